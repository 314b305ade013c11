package notifier_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/httpx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/console"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/discord"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/notifiertest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/slack"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/teams"
)

const hostile = "@everyone @here <@&123> <@456> <!channel> <!here> <!everyone> <@U024BE7LH> <!subteam^S1> <at>x</at> < AT >boss</ at> " +
	"`code` **bold** [click](javascript:alert(1)) \x1b[31mred\x1b[0m"

// hostileEnvelope is a 30-pod group whose annotations, logs and advice are
// huge and full of mention syntax.
func hostileEnvelope(t *testing.T, pods int) *envelope.Envelope {
	t.Helper()
	env := withAdvice(testEnvelope(t, "hostile", pods, envelope.StatusFiring))
	huge := strings.Repeat("FATAL: DB_HOST missing 😱 日本語 "+hostile+" ", 400) // ~80 KB
	env.Notification.CommonLabels["alertname"] = "Crash" + hostile
	env.Notification.CommonAnnotations["summary"] = huge
	env.Notification.CommonLabels["reason"] = huge
	env.Enrichment.Headline = huge
	env.Enrichment.KeyEvidence = []string{huge, huge, hostile}
	for range 40 {
		env.Enrichment.KeyEvidence = append(env.Enrichment.KeyEvidence, hostile)
	}
	env.Advice.Structured.LikelyCause = huge
	env.Advice.Structured.Evidence = []string{huge, hostile}
	for i := range 60 {
		env.Advice.Structured.NextSteps = append(env.Advice.Structured.NextSteps,
			envelope.NextStep{Command: fmt.Sprintf("kubectl %d %s", i, huge), Risky: i%2 == 0})
	}
	env.Notification.TruncatedAlerts = 7
	return env
}

func TestSinksStayWithinLimitsAndPingNobody(t *testing.T) {
	for _, pods := range []int{1, 30} {
		t.Run(fmt.Sprintf("%d pods", pods), func(t *testing.T) {
			hc, err := httpx.New(httpx.Config{}, zap.NewNop(), nil)
			require.NoError(t, err)
			dF := notifiertest.NewDiscord(t, notifiertest.Rate{})
			sF := notifiertest.NewSlack(t, notifiertest.Rate{})
			tF := notifiertest.NewTeams(t, notifiertest.Rate{})
			sinks := []message.Notifier{
				discord.New(discord.Config{Name: "d", URL: config.Secret(dF.URL())}, hc),
				slack.New(slack.Config{Name: "s", URL: config.Secret(sF.URL()), Pace: time.Millisecond}, hc),
				teams.New(teams.Config{Name: "t", URL: config.Secret(tF.URL()), Pace: time.Millisecond}, hc),
			}
			env := hostileEnvelope(t, pods)
			msg := message.Build(env)
			for _, kind := range []message.Kind{message.KindNotify, message.KindFollowup} {
				for _, s := range sinks {
					_, err := s.Notify(t.Context(), message.Request{Env: env, Msg: msg, Kind: kind})
					require.NoError(t, err)
				}
			}
			for _, f := range []*notifiertest.Fake{dF, sF, tF} {
				assert.Empty(t, f.Violations())
				assert.Zero(t, f.Refused())
				assert.Empty(t, f.Pings())
				assert.Len(t, f.Accepted(), 2)
			}
			body := plain(sF.Accepted()[0].Body)
			assert.Contains(t, body, "&lt;!channel&gt;")
			assert.Contains(t, body, message.Marker)
			assert.Contains(t, string(dF.Accepted()[0].Body), message.Marker)
			if pods == 30 {
				for _, f := range []*notifiertest.Fake{dF, sF, tF} {
					assert.Contains(t, plain(f.Accepted()[0].Body), "+27 more", "10 listed of 30 + 7 truncated")
				}
				assert.Contains(t, msg.Subject, "(37 pods)")
			}
			text := console.Render(msg, message.KindNotify)
			assert.NotContains(t, text, "\x1b", "terminal escapes are stripped")
			for _, l := range strings.Split(text, "\n") {
				assert.LessOrEqual(t, message.Runes(l), 310)
			}
		})
	}
}

// TestDiscordEditOf404 pins the two 404s an edit can meet: a deleted
// message is posted anew and leaves the webhook alive; a deleted webhook is
// marked dead like any other 404, without the URL in the error.
func TestDiscordEditOf404(t *testing.T) {
	hc, err := httpx.New(httpx.Config{}, zap.NewNop(), nil)
	require.NoError(t, err)
	dF := notifiertest.NewDiscord(t, notifiertest.Rate{})
	d := discord.New(discord.Config{Name: "d", URL: config.Secret(dF.URL())}, hc)
	env := testEnvelope(t, "g-edit", 1, envelope.StatusFiring)
	req := message.Request{Env: env, Msg: message.Build(env), Kind: message.KindNotify, MessageID: "999"}

	res, err := d.Notify(t.Context(), req)
	require.NoError(t, err)
	assert.NotEmpty(t, res.MessageID)
	assert.False(t, res.Edited)
	assert.Equal(t, 1, dF.Posts(), "the deleted message is posted anew")
	_, dead := hc.Dead("d")
	assert.False(t, dead, "a deleted message does not kill the webhook")

	dF.Inject(notifiertest.Response{Status: http.StatusNotFound, Body: `{"message":"Unknown Webhook","code":10015}`})
	req.MessageID = res.MessageID
	_, err = d.Notify(t.Context(), req)
	require.ErrorIs(t, err, httpx.ErrDead)
	assert.True(t, retry.IsPermanent(err))
	assert.Contains(t, err.Error(), "HTTP 404")
	assert.NotContains(t, err.Error(), "discord-token-SECRET")
	reason, dead := hc.Dead("d")
	assert.True(t, dead, "a deleted webhook is marked dead")
	assert.NotContains(t, reason, "discord-token-SECRET")
	assert.Equal(t, 1, dF.Posts(), "no post after the webhook is gone")
}

func TestTruncateIsRuneSafeAndVisible(t *testing.T) {
	s := strings.Repeat("日本語😱", 100)
	out := message.Truncate(s, 50)
	assert.Equal(t, 50, message.Runes(out))
	assert.True(t, strings.HasSuffix(out, message.Marker))
	assert.Equal(t, "short", message.Truncate("short", 50))
	assert.Equal(t, "a, b, +3 more", message.List([]string{"a", "b", "c", "d"}, ", ", 2, 100, 1))
}

func TestTeamsLegacyURLIsRecognised(t *testing.T) {
	assert.True(t, teams.Legacy("https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456"))
	assert.False(t, teams.Legacy("https://prod-12.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x"))
}

// plain undoes encoding/json's HTML escaping so assertions read naturally.
func plain(b []byte) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b))
}
