package notifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/discord"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/notifiertest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/slack"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/teams"
)

// fuzzEnvelope builds a notification whose every untrusted text (labels,
// annotations, cluster evidence, model output) comes from the fuzzer.
// rep repeats the texts to push every limit; pods sets the group size.
func fuzzEnvelope(t *testing.T, name, target, summary, advice, command string, rep, pods uint8, structured, resolved bool) *envelope.Envelope {
	t.Helper()
	r := func(s string) string { return strings.Repeat(s, int(rep%40)+1) }
	start := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	w := envelope.SampleGroup("payments-api", int(pods%120)+1, start)
	for i := range w.Alerts {
		a := &w.Alerts[i]
		a.Labels["alertname"] = name
		a.Labels["namespace"] = target
		a.Labels["pod"] = r(target) + a.Labels["pod"]
		a.Annotations = map[string]string{"summary": r(summary), "description": r(advice), "runbook_url": "https://x/" + command}
		a.GeneratorURL = "http://prometheus/graph?" + target
		if resolved {
			a.Status, a.EndsAt = envelope.StatusResolved, start.Add(time.Hour)
		}
	}
	if resolved {
		w.Status = envelope.StatusResolved
	}
	w.CommonLabels["alertname"] = name
	w.CommonAnnotations = map[string]string{"summary": r(summary)}
	w.TruncatedAlerts = int(rep)
	env, err := envelope.New(w, start)
	if err != nil {
		t.Skip("not a notification ingest would accept:", err)
	}
	env.Enrichment = &envelope.Enrichment{
		ClusterAccess: true, Headline: r(summary), Text: r(advice),
		KeyEvidence: []string{r(advice), r(command), target}, Errors: []string{r(target)},
	}
	a := &envelope.Advice{Status: envelope.AdviceOK, Model: name, Duration: 3 * time.Second, Text: r(advice)}
	if structured {
		a.Structured = &envelope.StructuredAdvice{
			Summary: r(advice), LikelyCause: r(summary), Confidence: target,
			Evidence: []string{r(summary), r(advice), command},
		}
		for range int(rep%25) + 1 {
			a.Structured.NextSteps = append(a.Structured.NextSteps, envelope.NextStep{Command: r(command), Why: r(summary), Risky: rep%2 == 0})
		}
	}
	env.Advice = a
	return env
}

// post hands a body to a platform fake's handler (no network) and fails
// the test when the fake saw a limit broken or a mention that would ping.
func post(t *testing.T, f *notifiertest.Fake, body []byte) {
	t.Helper()
	violations, pings := len(f.Violations()), len(f.Pings())
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, f.URL(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	f.Server.Config.Handler.ServeHTTP(rec, req)
	if v := f.Violations(); len(v) > violations {
		t.Fatalf("payload breaks the platform's limits: %v\n%s", v[violations:], body)
	}
	if p := f.Pings(); len(p) > pings {
		t.Fatalf("payload would ping: %v\n%s", p[pings:], body)
	}
	if rec.Code >= 300 {
		t.Fatalf("fake answered %d: %s", rec.Code, rec.Body.String())
	}
}

// FuzzFormatters builds the Discord, Slack and Teams payloads from fuzzed
// notifications and checks them with the platform fakes, which enforce the
// documented limits (wire-facts.md) and report anything that would mention
// @everyone, @here, a user, a role or a channel.
func FuzzFormatters(f *testing.F) {
	f.Add("KubePodCrashLooping", "payments", "Pod is crash looping.", "The container exits with code 1 after reading its config.", "kubectl -n payments logs deploy/payments-api --previous", uint8(0), uint8(0), true, false)
	f.Add("@everyone", "@here", "<!channel> <@U012345> <!subteam^S1|@oncall>", "<at>Jane</at> <@123456789012345678> <@&987654321>", "@everyone `rm -rf /` ```", uint8(3), uint8(5), true, false)
	f.Add("*_~`|>#", "<script>", "&amp; &lt; &gt; <http://evil|click>", "[link](http://x) ||spoiler||", "$(curl evil)", uint8(39), uint8(119), true, false)
	f.Add("HighMemory", "kube-system", strings.Repeat("é", 700), strings.Repeat("🔥", 3000), strings.Repeat("x", 2100), uint8(39), uint8(119), true, false)
	f.Add("Resolved", "default", "back to normal", "", "", uint8(1), uint8(2), false, true)
	f.Add("\u200b@\u200beveryone", "\x00\xff", "\r\n\t", "line1\nline2\n\n\n", "a\u202eb", uint8(7), uint8(1), false, false)
	f.Add("X", "ns", "s", "<", ">", uint8(255), uint8(255), true, false)

	d := notifiertest.NewDiscord(f, notifiertest.Rate{})
	s := notifiertest.NewSlack(f, notifiertest.Rate{})
	tm := notifiertest.NewTeams(f, notifiertest.Rate{})

	f.Fuzz(func(t *testing.T, name, target, summary, advice, command string, rep, pods uint8, structured, resolved bool) {
		env := fuzzEnvelope(t, name, target, summary, advice, command, rep, pods, structured, resolved)
		m := message.Build(env)
		for _, kind := range []message.Kind{message.KindNotify, message.KindFollowup} {
			body, err := json.Marshal(discord.Build(m, env.ReceivedAt))
			if err != nil {
				t.Fatal(err)
			}
			post(t, d, body)

			body, err = json.Marshal(slack.Build(m, kind))
			if err != nil {
				t.Fatal(err)
			}
			post(t, s, body)

			body, err = teams.Encode(m, kind)
			if err != nil {
				t.Fatalf("teams: %v", err)
			}
			post(t, tm, body)
		}
	})
}
