package notifier_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
)

func TestEnvAddsSinksAndSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "slack")
	require.NoError(t, os.WriteFile(file, []byte("https://hooks.slack.example/services/T/B/X\n"), 0o600))
	var c notifier.Config
	c.Defaults()
	require.NoError(t, c.ApplyEnv(config.MapEnv(map[string]string{
		"SMARTMON_WEBHOOK_URL":            "https://receiver.example/hook",
		"SMARTMON_WEBHOOK_SECRET":         "s3cret",
		"SMARTMON_DISCORD_WEBHOOK_URL":    "https://discord.example/api/webhooks/1/tok",
		"SMARTMON_SLACK_WEBHOOK_URL_FILE": file,
		"SMARTMON_ADVICE_DEADLINE":        "20s",
	})))
	require.NoError(t, c.Validate())
	require.Len(t, c.Sinks, 3)
	assert.Equal(t, "https://hooks.slack.example/services/T/B/X", c.Sinks[2].URL.Reveal())
	assert.Equal(t, "s3cret", c.Sinks[0].Secret.Reveal())
	assert.Equal(t, "20s", c.AdviceDeadline.String())
	assert.True(t, c.ConsoleEnabled())
}

func TestValidateReportsProblemsWithoutURLs(t *testing.T) {
	c := notifier.Config{Sinks: []notifier.SinkConfig{
		{Name: "x", Type: "pagerduty", URL: "https://secret.example/TOKEN"},
		{Name: "y", Type: "slack", URL: "not a url TOKEN2"},
	}, Routes: []notifier.RouteConfig{{Matchers: []string{`severity=~"(`}, Sinks: []string{"nope"}}}}
	c.Defaults()
	err := c.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `type "pagerduty" is not a known sink type: want discord, slack, teams or webhook`)
	assert.Contains(t, err.Error(), `no sink named "nope"`)
	assert.Contains(t, err.Error(), "matchers")
	assert.NotContains(t, err.Error(), "TOKEN")
}

func TestRouterTable(t *testing.T) {
	no := false
	r, err := notifier.NewRouter([]notifier.RouteConfig{
		{Matchers: []string{`severity="critical"`, `namespace=~"prod-.*"`}, Sinks: []string{"pager"}, Continue: true},
		{Matchers: []string{`team="db"`}, Sinks: []string{"db"}, SendResolved: &no},
		{Matchers: []string{`{severity!="info"}`}, Sinks: []string{"chat"}},
	}, notifier.RouteConfig{}, []string{"console", "pager", "db", "chat"})
	require.NoError(t, err)
	cases := []struct {
		labels   map[string]string
		resolved bool
		want     []string
	}{
		{map[string]string{"severity": "critical", "namespace": "prod-a", "team": "db"}, false, []string{"pager", "db"}},
		{map[string]string{"severity": "critical", "namespace": "prod-a"}, false, []string{"pager", "chat"}},
		{map[string]string{"severity": "warning", "team": "db"}, true, nil},
		{map[string]string{"severity": "warning"}, false, []string{"chat"}},
		{map[string]string{"severity": "info"}, false, []string{"console", "pager", "db", "chat"}},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, r.Match(tc.labels, tc.resolved), "%v resolved=%v", tc.labels, tc.resolved)
	}
	_ = envelope.StatusFiring
}
