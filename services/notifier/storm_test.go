package notifier_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/notifiertest"
)

// stormScale shrinks the platforms' rates (and our pacing with them) so
// the storm runs in seconds: 50x faster than real time.
const stormScale = 50

// BenchmarkStorm sends the storm of the issue through the whole stage
// (real embedded JetStream, the three consumers, claims) to fakes that
// enforce each platform's rate limits, scaled 50x: 3 deployments x 50
// pods; Alertmanager groups by deployment, so each deployment's group
// grows in 5 notifications (10, 20, ... 50 pods), then repeats 5 more
// times unchanged (10 repeats in all), then resolves. It reports the
// messages each platform received and the requests they refused.
func BenchmarkStorm(b *testing.B) {
	for range b.N {
		runStorm(b)
	}
}

func runStorm(b *testing.B) {
	b.Helper()
	e := jsxtest.Start(b)
	second := time.Second / stormScale
	dF := notifiertest.NewDiscord(b, notifiertest.Rate{Burst: 5, Every: 2 * second / 5})
	sF := notifiertest.NewSlack(b, notifiertest.Rate{Burst: 2, Every: second})
	tF := notifiertest.NewTeams(b, notifiertest.Rate{Burst: 4, Every: second / 4})
	cfg := fastConfig(
		notifier.SinkConfig{Name: "discord", Type: notifier.TypeDiscord, URL: secret(dF.URL())},
		notifier.SinkConfig{Name: "slack", Type: notifier.TypeSlack, URL: secret(sF.URL()), Pace: second},
		notifier.SinkConfig{Name: "teams", Type: notifier.TypeTeams, URL: secret(tF.URL()), Pace: second / 4},
	)
	cfg.Console = new(bool)
	cfg.AdviceDeadline = time.Hour // the storm is advised: keep the overdue path out of it
	r := startStageB(b, e, cfg)
	_ = r
	start := time.Now()
	const deployments, pods, growth, repeats = 3, 50, 5, 10
	var last []*envelope.Envelope
	for step := 1; step <= repeats; step++ {
		for d := range deployments {
			n := pods * min(step, growth) / growth
			env := stormEnvelope(b, d, n, envelope.StatusFiring)
			if step > growth {
				redeliver(b, e, jsx.SubjectAdvised, env) // same notification again
			} else {
				publish(b, e, jsx.SubjectAdvised, env)
			}
			if step == repeats {
				last = append(last, env)
			}
		}
	}
	for d := range deployments {
		publish(b, e, jsx.SubjectAdvised, stormEnvelope(b, d, pods, envelope.StatusResolved))
	}
	require.Eventually(b, func() bool {
		return dF.Posts()+dF.Edits() == deployments*(growth+1) && sF.Posts() == deployments*(growth+1) && tF.Posts() == deployments*(growth+1)
	}, 60*time.Second, 10*time.Millisecond)
	settled(b, e, "notifier")
	elapsed := time.Since(start)
	require.Len(b, last, deployments)
	b.ReportMetric(float64(dF.Posts()), "discord_posts")
	b.ReportMetric(float64(dF.Edits()), "discord_edits")
	b.ReportMetric(float64(sF.Posts()), "slack_posts")
	b.ReportMetric(float64(tF.Posts()), "teams_posts")
	b.ReportMetric(float64(dF.Refused()+sF.Refused()+tF.Refused()), "refused")
	b.ReportMetric(float64(len(dF.Pings())+len(sF.Pings())+len(tF.Pings())), "pings")
	b.ReportMetric(elapsed.Seconds()*stormScale, "real_s_equiv")
	require.Zero(b, dF.Refused()+sF.Refused()+tF.Refused(), "the fakes refused requests")
}

func stormEnvelope(tb testing.TB, d, pods int, status string) *envelope.Envelope {
	tb.Helper()
	env := withAdvice(testEnvelopeTB(tb, fmt.Sprintf("{}:{deployment=\"api-%d\"}", d), pods, status))
	return env
}
