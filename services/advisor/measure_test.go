package advisor

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
)

// The measurements in docs/benchmarks/advisor.md. They run real time (a
// 30 s model and a 45 s deadline take about a minute), so only when asked:
//
//	ADVISOR_MEASURE=1 go test -run TestMeasure -v -count=1 .
//
// ADVISOR_MEASURE_SCALE=0.1 shrinks every duration tenfold.
func measureScale(t *testing.T) float64 {
	t.Helper()
	if os.Getenv("ADVISOR_MEASURE") == "" {
		t.Skip("set ADVISOR_MEASURE=1 to run the measurements")
	}
	scale := 1.0
	if v := os.Getenv("ADVISOR_MEASURE_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err)
		scale = f
	}
	return scale
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestMeasureBurst: 200 alerts at once against a model that takes 30 s per
// answer, one model slot, a 45 s deadline.
func TestMeasureBurst(t *testing.T) {
	scale := measureScale(t)
	sc := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
	for _, c := range []struct {
		name     string
		problems int
	}{{"200 distinct problems", 200}, {"200 alerts of 3 problems", 3}} {
		t.Run(c.name, func(t *testing.T) {
			fake := fakellm.NewOllama(t, fakellm.WithMode(fakellm.Slow), fakellm.WithSlowDelay(sc(30*time.Second)),
				fakellm.WithLoaded("mistral:latest"), fakellm.WithParallel(1, 512))
			cfg := testConfig(BackendOllama, fake.URL)
			cfg.Deadline, cfg.CallTimeout, cfg.DrainTimeout = sc(45*time.Second), sc(3*time.Minute), sc(90*time.Second)
			// A 2-minute late window (the default is 10) keeps the
			// measurement short; late advice scales with it.
			cfg.LateWindow = sc(2 * time.Minute)
			h := startStage(t, cfg, fake)
			var envs []*envelope.Envelope
			for i := range 200 {
				dep := fmt.Sprintf("svc%d", i%c.problems)
				envs = append(envs, crashEnv(t, dep, fmt.Sprintf("%s-7d9f8b6c5d-%05d", dep, i), 0))
			}
			start := time.Now()
			publishAll(t, h.e, envs)
			require.Eventually(t, func() bool {
				return h.e.Messages(t, jsx.StreamAlerts, jsx.SubjectAdvised+".>") == 200
			}, cfg.Deadline+sc(30*time.Second), 100*time.Millisecond)
			all := collect(t, h.e, jsx.SubjectAdvised)
			var lat, okLat []time.Duration
			withAdvice := 0
			for _, env := range envs {
				p := all[env.ID]
				d := p.at.Sub(env.ReceivedAt)
				lat = append(lat, d)
				if p.env.Advice.Available() {
					withAdvice++
					okLat = append(okLat, d)
				}
			}
			allAdvised := time.Since(start)
			// Calls that started inside the budget, and those that got a
			// slot within the late window, finish and bring late advice:
			// wait until the window is over and the last call is done.
			windowEnd := start.Add(cfg.Deadline + cfg.LateWindow + sc(30*time.Second))
			require.Eventually(t, func() bool {
				return time.Now().After(windowEnd) && testutil.ToFloat64(h.st.m.inflight) == 0
			}, time.Until(windowEnd)+cfg.CallTimeout, 100*time.Millisecond)
			require.Eventually(t, func() bool {
				return testutil.ToFloat64(h.st.m.late) == float64(h.e.Messages(t, jsx.StreamAlerts, jsx.SubjectFollowup+".>"))
			}, 10*time.Second, 100*time.Millisecond)
			late := collect(t, h.e, jsx.SubjectFollowup)
			var lateLat []time.Duration
			for id, p := range late {
				lateLat = append(lateLat, p.at.Sub(all[id].env.ReceivedAt))
			}
			t.Logf("scale %.2f, %s: %d alerts, %d model calls, %d with advice (max %s after receipt), %d unavailable; "+
				"time to alerts.advised p50 %s p90 %s max %s (all advised %s after the first publish); late advice %d (max %s after receipt)",
				scale, c.name, len(envs), fake.Calls(), withAdvice, pct(okLat, 1).Round(time.Millisecond), len(envs)-withAdvice,
				pct(lat, .5).Round(time.Millisecond), pct(lat, .9).Round(time.Millisecond), pct(lat, 1).Round(time.Millisecond),
				allAdvised.Round(time.Millisecond), len(late), pct(lateLat, 1).Round(time.Millisecond))
		})
	}
}

// TestMeasurePromptSizes: the estimated prompt size over evidence of
// growing size, for the default num_ctx 4096 / num_predict 768.
func TestMeasurePromptSizes(t *testing.T) {
	measureScale(t)
	b := builder(t, 4096, 768)
	var sizes []int
	for _, lines := range []int{0, 5, 20, 50, 100, 200, 500, 1000, 5000, 20000} {
		env := crashEnv(t, "api", "api-7d9f8b6c5d-x2x9k", 0, withText(bigLogs(lines)))
		start := time.Now()
		p := b.Build(env)
		sizes = append(sizes, p.Tokens)
		t.Logf("log lines %5d: evidence %7d bytes -> prompt %4d tokens (system %d), cut %v, built in %s",
			lines, len(env.Enrichment.Text), p.Tokens, EstimateTokens(p.System), p.Cut, time.Since(start).Round(time.Microsecond))
	}
	t.Logf("budget for the prompt: %d tokens (num_ctx 4096 - num_predict 768 - reserve %d)", 4096-768-promptReserve, promptReserve)
	t.Logf("sizes: %v", sizes)
}
