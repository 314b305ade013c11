package notifier_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/notifiertest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/webhook"
)

type fakes struct {
	discord, slack, teams, hook *notifiertest.Fake
}

func allFakes(t *testing.T) (fakes, []notifier.SinkConfig) {
	t.Helper()
	f := fakes{
		discord: notifiertest.NewDiscord(t, notifiertest.Rate{Burst: 5, Every: 40 * time.Millisecond}),
		slack:   notifiertest.NewSlack(t, notifiertest.Rate{Burst: 2, Every: 10 * time.Millisecond}),
		teams:   notifiertest.NewTeams(t, notifiertest.Rate{Burst: 4, Every: 10 * time.Millisecond}),
		hook:    notifiertest.NewWebhook(t),
	}
	hook := sink("hook", notifier.TypeWebhook, f.hook.URL())
	hook.Secret = "hmac-secret"
	return f, []notifier.SinkConfig{
		sink("chat", notifier.TypeDiscord, f.discord.URL()),
		sink("slack", notifier.TypeSlack, f.slack.URL()),
		sink("teams", notifier.TypeTeams, f.teams.URL()),
		hook,
	}
}

func TestAdvisedAlertReachesEverySinkOnce(t *testing.T) {
	e := jsxtest.Start(t)
	f, sinks := allFakes(t)
	r := startStage(t, e, fastConfig(sinks...))
	env := withAdvice(testEnvelope(t, "g1", 1, envelope.StatusFiring))
	publish(t, e, jsx.SubjectAdvised, env)

	require.Eventually(t, func() bool {
		return f.discord.Posts() == 1 && f.slack.Posts() == 1 && f.teams.Posts() == 1 && f.hook.Posts() == 1 &&
			strings.Contains(r.console.String(), "trace:")
	}, 10*time.Second, 10*time.Millisecond)

	out := r.console.String()
	assert.Contains(t, out, "🔥 FIRING  KubePodCrashLooping  payments/payments-api-7d9f8b6c5-x2x7k (critical)\n")
	assert.Contains(t, out, "   container api restarted 7 times in 10m; last exit 1 (Error) 42s ago\n")
	assert.Contains(t, out, `   evidence: "FATAL: config key DB_HOST missing" (previous container log, line 12 of 12)`)
	assert.Contains(t, out, "likely cause (confidence: medium): The new image expects DB_HOST")
	assert.Contains(t, out, "⚠ kubectl -n payments rollout undo deploy/payments-api   (changes the cluster)")
	assert.Contains(t, out, "trace: smartmon trace "+env.ID)

	hook := f.hook.Accepted()[0]
	assert.Equal(t, webhook.Sign(config.Secret("hmac-secret"), hook.Body), hook.Header.Get(webhook.HeaderSignature))
	assert.Equal(t, "application/json", hook.Header.Get("Content-Type"))
	assert.Equal(t, "notify", hook.Header.Get(webhook.HeaderKind))
	assert.Equal(t, env.ID+":notify", hook.Header.Get(webhook.HeaderIdempotencyKey))
	got, err := envelope.Decode(hook.Body)
	require.NoError(t, err)
	assert.Equal(t, env.ID, got.ID)

	d := f.discord.Accepted()[0]
	assert.Equal(t, "wait=true", d.Query)
	assert.True(t, contains(d.Body, "Likely cause", "DB_HOST", `"allowed_mentions":{"parse":[]}`))

	// A redelivery (crash after posting, replay) posts nothing anew.
	redeliver(t, e, jsx.SubjectAdvised, env)
	settled(t, e, "notifier")
	assert.Equal(t, 1, f.discord.Posts())
	assert.Equal(t, 1, f.slack.Posts())
	assert.Equal(t, 1, f.teams.Posts())
	assert.Equal(t, 1, f.hook.Posts())
	assert.Equal(t, 1, strings.Count(r.console.String(), "🔥 FIRING"))
	for _, fk := range []*notifiertest.Fake{f.discord, f.slack, f.teams} {
		assert.Zero(t, fk.Refused())
		assert.Empty(t, fk.Pings())
	}
}

func TestOverdueAlertIsPostedWithoutAdvice(t *testing.T) {
	e := jsxtest.Start(t)
	f, sinks := allFakes(t)
	r := startStage(t, e, fastConfig(sinks[:2]...))
	env := testEnvelope(t, "g-overdue", 1, envelope.StatusFiring)
	publish(t, e, jsx.SubjectEnriched, env)

	require.Eventually(t, func() bool { return f.discord.Posts() == 1 && f.slack.Posts() == 1 }, 10*time.Second, 10*time.Millisecond)
	first := f.discord.Accepted()[0].At
	assert.False(t, first.Before(env.ReceivedAt.Add(400*time.Millisecond)), "posted before deadline+grace")
	assert.True(t, contains(f.slack.Accepted()[0].Body, "advice unavailable: advisor did not answer within 300ms"))
	require.Eventually(t, func() bool {
		return strings.Contains(r.console.String(), "advice unavailable: advisor did not answer within 300ms")
	}, 5*time.Second, 10*time.Millisecond)
}

func TestAdvisorWithinDeadlineWinsOverOverduePath(t *testing.T) {
	e := jsxtest.Start(t)
	f, sinks := allFakes(t)
	startStage(t, e, fastConfig(sinks[:2]...))
	env := testEnvelope(t, "g-race", 1, envelope.StatusFiring)
	publish(t, e, jsx.SubjectEnriched, env)
	publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, "g-race", 1, envelope.StatusFiring)))

	require.Eventually(t, func() bool { return f.discord.Posts() == 1 && f.slack.Posts() == 1 }, 10*time.Second, 10*time.Millisecond)
	settled(t, e, "notifier-overdue") // waits past the deadline, then acks
	assert.Equal(t, 1, f.discord.Posts())
	assert.Zero(t, f.discord.Edits())
	assert.Equal(t, 1, f.slack.Posts())
	assert.True(t, contains(f.slack.Accepted()[0].Body, "Likely cause"))
}

func TestLateAdviceEditsDiscordAndFollowsUpOnSlackAndTeams(t *testing.T) {
	e := jsxtest.Start(t)
	f, sinks := allFakes(t)
	startStage(t, e, fastConfig(sinks[:3]...))
	env := testEnvelope(t, "g-late", 1, envelope.StatusFiring)
	env.Advice = &envelope.Advice{Status: envelope.AdviceUnavailable, Reason: "deadline"}
	publish(t, e, jsx.SubjectAdvised, env)
	require.Eventually(t, func() bool { return f.discord.Posts() == 1 && f.slack.Posts() == 1 && f.teams.Posts() == 1 },
		10*time.Second, 10*time.Millisecond)
	assert.True(t, contains(f.slack.Accepted()[0].Body, "advice unavailable: deadline"))

	late := withAdvice(testEnvelope(t, "g-late", 1, envelope.StatusFiring))
	late.Advice.Late = true
	publish(t, e, jsx.SubjectFollowup, late)
	require.Eventually(t, func() bool { return f.discord.Edits() == 1 && f.slack.Posts() == 2 && f.teams.Posts() == 2 },
		10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, f.discord.Posts(), "Discord edits, never posts again")
	edit := f.discord.Accepted()[1]
	assert.Equal(t, http.MethodPatch, edit.Method)
	assert.True(t, contains(edit.Body, "Likely cause", "arrived late"))
	assert.True(t, contains(f.slack.Accepted()[1].Body, "Advice:", "Likely cause"))
	assert.Less(t, len(f.slack.Accepted()[1].Body), len(f.slack.Accepted()[0].Body)+600, "follow-up is compact")

	redeliver(t, e, jsx.SubjectFollowup, late)
	settled(t, e, "notifier-followup")
	assert.Equal(t, 1, f.discord.Edits())
	assert.Equal(t, 2, f.slack.Posts())
}

func TestDiscordKeepsOneLivingMessagePerIncident(t *testing.T) {
	e := jsxtest.Start(t)
	f, sinks := allFakes(t)
	startStage(t, e, fastConfig(sinks[0], sinks[1]))
	publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, "g-live", 2, envelope.StatusFiring)))
	require.Eventually(t, func() bool { return f.discord.Posts() == 1 }, 10*time.Second, 10*time.Millisecond)
	publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, "g-live", 3, envelope.StatusFiring)))
	require.Eventually(t, func() bool { return f.discord.Edits() == 1 }, 10*time.Second, 10*time.Millisecond)
	resolved := testEnvelope(t, "g-live", 3, envelope.StatusResolved)
	resolved.Advice = &envelope.Advice{Status: envelope.AdviceSkipped, Reason: "resolved"}
	publish(t, e, jsx.SubjectAdvised, resolved)
	require.Eventually(t, func() bool { return f.discord.Edits() == 2 && f.slack.Posts() == 3 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, f.discord.Posts())
	last := f.discord.Accepted()[2]
	assert.True(t, contains(last.Body, "RESOLVED after 23 min", "(3 pods)"))
	assert.True(t, contains(f.slack.Accepted()[2].Body, "RESOLVED after 23 min"))
	// A new incident on the same group after it resolved gets a new message.
	again := withAdvice(testEnvelope(t, "g-live", 1, envelope.StatusFiring))
	again.Notification.Alerts[0].StartsAt = again.Notification.Alerts[0].StartsAt.Add(time.Hour)
	again.ID = "fresh-incident-id"
	publish(t, e, jsx.SubjectAdvised, again)
	require.Eventually(t, func() bool { return f.discord.Posts() == 2 }, 10*time.Second, 10*time.Millisecond)
}

func TestDeadWebhookIsNotRetriedAndIsDeadLettered(t *testing.T) {
	e := jsxtest.Start(t)
	f, sinks := allFakes(t)
	r := startStage(t, e, fastConfig(sinks[:2]...))
	f.slack.Inject(notifiertest.Response{Status: http.StatusNotFound, Body: "channel_not_found"})
	publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, "g-404", 1, envelope.StatusFiring)))
	require.Eventually(t, func() bool { return len(deadLetters(t, e)) == 1 }, 10*time.Second, 10*time.Millisecond)
	dl := deadLetters(t, e)[0]
	assert.Contains(t, dl, "webhook is dead")
	assert.Contains(t, dl, "HTTP 404")
	assert.NotContains(t, dl, "slack-token-SECRET")
	assert.Equal(t, 1, f.discord.Posts(), "the healthy sink is delivered")
	assert.Len(t, f.slack.Requests(), 1)

	publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, "g-404b", 1, envelope.StatusFiring)))
	require.Eventually(t, func() bool { return f.discord.Posts() == 2 && len(deadLetters(t, e)) == 2 }, 10*time.Second, 10*time.Millisecond)
	assert.Len(t, f.slack.Requests(), 1, "a dead webhook is never called again")
	detail, err := r.stage.Check(t.Context())
	require.NoError(t, err)
	assert.Contains(t, detail, "slack (dead:")
	assert.NotContains(t, detail, "SECRET")
}

func TestPlatformOutageLosesNothingAndRespectsRetryAfter(t *testing.T) {
	e := jsxtest.Start(t)
	f, sinks := allFakes(t)
	startStage(t, e, fastConfig(sinks[0], sinks[1]))
	f.discord.Down(notifiertest.Response{Status: http.StatusServiceUnavailable, Header: map[string]string{"Retry-After": "0.3"}})
	for _, g := range []string{"o1", "o2", "o3"} {
		publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, g, 1, envelope.StatusFiring)))
	}
	require.Eventually(t, func() bool { return len(f.discord.Requests()) >= 4 && f.slack.Posts() == 3 }, 10*time.Second, 10*time.Millisecond)
	assert.Zero(t, f.discord.Posts())
	f.discord.Up()
	require.Eventually(t, func() bool { return f.discord.Posts() == 3 }, 15*time.Second, 10*time.Millisecond)
	settled(t, e, "notifier")
	assert.Zero(t, f.discord.Early(), "no request before the advertised retry time")
	assert.Empty(t, deadLetters(t, e))
	assert.Equal(t, 3, f.slack.Posts(), "the healthy sink was neither blocked nor duplicated")
}

func TestRateLimitAnswersAreHonoured(t *testing.T) {
	cases := []struct {
		name string
		resp notifiertest.Response
		want time.Duration
	}{
		{"discord float retry_after", notifiertest.Response{
			Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "1", "Content-Type": "application/json"},
			Body: `{"message":"You are being rate limited.","retry_after":0.347,"global":false}`,
		}, 347 * time.Millisecond},
		{"header only", notifiertest.Response{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "1"}}, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := jsxtest.Start(t)
			f, sinks := allFakes(t)
			startStage(t, e, fastConfig(sinks[0]))
			f.discord.Inject(tc.resp)
			publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, "rl", 1, envelope.StatusFiring)))
			require.Eventually(t, func() bool { return f.discord.Posts() == 1 }, 10*time.Second, 10*time.Millisecond)
			reqs := f.discord.Requests()
			require.Len(t, reqs, 2)
			gap := reqs[1].At.Sub(reqs[0].At)
			assert.GreaterOrEqual(t, gap, tc.want)
			assert.Less(t, gap, tc.want+250*time.Millisecond, "retried promptly once allowed")
		})
	}
}

func TestRoutingPicksSinks(t *testing.T) {
	e := jsxtest.Start(t)
	f, sinks := allFakes(t)
	cfg := fastConfig(sinks[:3]...)
	no := false
	cfg.Routes = []notifier.RouteConfig{
		{Matchers: []string{`severity="critical"`}, Sinks: []string{"chat"}, Continue: true, SendResolved: &no},
		{Matchers: []string{`namespace=~"pay.*"`}, Sinks: []string{"slack"}},
	}
	cfg.DefaultRoute = notifier.RouteConfig{Sinks: []string{"teams"}}
	startStage(t, e, cfg)
	publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, "r1", 1, envelope.StatusFiring)))
	res := testEnvelope(t, "r1", 1, envelope.StatusResolved)
	publish(t, e, jsx.SubjectAdvised, res)
	require.Eventually(t, func() bool { return f.discord.Posts() == 1 && f.slack.Posts() == 2 }, 10*time.Second, 10*time.Millisecond)
	settled(t, e, "notifier")
	assert.Equal(t, 1, f.discord.Posts(), "send_resolved: false on the Discord route")
	assert.Zero(t, f.teams.Posts(), "default route only when nothing matched")
	var body map[string]any
	require.NoError(t, json.Unmarshal(f.slack.Accepted()[1].Body, &body))
}
