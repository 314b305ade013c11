package main_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/internal/proctest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
)

func smartmonBinary(t *testing.T) string {
	t.Helper()
	bin, err := proctest.Build(t.TempDir(), ".")
	require.NoError(t, err)
	return bin
}

// TestCrashRightAfterAccept kills the process with SIGKILL as soon as ingest
// answered 200, while the alert is still waiting for its (hanging) model,
// so the notifier has not run. The restarted process must deliver it.
func TestCrashRightAfterAccept(t *testing.T) {
	bin := smartmonBinary(t)
	sink := proctest.NewSink(t)
	llm := fakellm.NewOllama(t, fakellm.WithModels("mistral"), fakellm.WithMode(fakellm.Hang))
	dir := t.TempDir()
	env := map[string]string{"SMARTMON_WEBHOOK_URL": sink.Srv.URL, "SMARTMON_OLLAMA_URL": llm.URL, "SMARTMON_ADVICE_DEADLINE": "3s"}

	p := proctest.Start(t, bin, dir, env)
	code, err := proctest.Post(context.Background(), p.URL(), "", envelope.SampleCrashLoop(time.Now().Add(-time.Minute), false))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	p.Kill()
	require.Empty(t, sink.Got(), "the notifier must not have run before the crash")

	proctest.Start(t, bin, dir, env)
	require.Eventually(t, func() bool { return len(sink.Got()) == 1 }, 60*time.Second, 20*time.Millisecond)
	got := sink.Got()[0]
	require.NotNil(t, got.Advice)
	assert.Equal(t, envelope.AdviceUnavailable, got.Advice.Status)
}

// TestRealAlertmanager routes alerts through a real Alertmanager (built by
// the Makefile with go install) to ingest, with bearer auth.
func TestRealAlertmanager(t *testing.T) {
	am := os.Getenv("SMARTMON_ALERTMANAGER")
	if am == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("SMARTMON_ALERTMANAGER is not set: run the tests with `make test`, which installs Alertmanager")
		}
		t.Skip("SMARTMON_ALERTMANAGER not set (make test sets it)")
	}
	bin := smartmonBinary(t)
	sink := proctest.NewSink(t)
	const token = "am-e2e-token-1234"
	p := proctest.Start(t, bin, t.TempDir(), map[string]string{
		"SMARTMON_WEBHOOK_URL": sink.Srv.URL, "SMARTMON_INGEST_TOKEN": token,
		"SMARTMON_OLLAMA_URL": "http://127.0.0.1:1", "SMARTMON_ADVICE_DEADLINE": "1s",
	})

	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: smartmon
  group_by: [alertname, namespace]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: smartmon
    webhook_configs:
      - url: %s
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: %s
`, p.URL(), token)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600))
	amProc := proctest.StartListening(t, "alertmanager", "/-/ready", 30*time.Second, func(addr string) *exec.Cmd {
		return exec.Command(am, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "data"), //nolint:gosec,noctx // test
			"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	})
	amAddr := amProc.Listen
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", amProc.Logs.String())
		}
	})

	alerts := fmt.Sprintf(`[{"labels":{"alertname":"KubePodCrashLooping","namespace":"payments","pod":"payments-api-0","container":"api","severity":"critical"},
"annotations":{"summary":"Pod is crash looping."},"startsAt":%q,"generatorURL":"http://prometheus/graph"}]`, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	require.Eventually(t, func() bool {
		return proctest.Answers200(http.MethodPost, "http://"+amAddr+"/api/v2/alerts", alerts)
	}, 10*time.Second, 100*time.Millisecond)

	require.Eventually(t, func() bool { return len(sink.Got()) >= 1 }, 60*time.Second, 50*time.Millisecond)
	got := sink.Got()[0]
	assert.Equal(t, "KubePodCrashLooping", got.AlertName())
	assert.Equal(t, "payments-api-0", got.Notification.Alerts[0].Labels["pod"])
	assert.Equal(t, "smartmon", got.Notification.Receiver)
	assert.Contains(t, got.Notification.GroupKey, "KubePodCrashLooping")
}
