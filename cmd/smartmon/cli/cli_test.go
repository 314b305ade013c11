package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/trace"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestUsageAndVersion(t *testing.T) {
	code, _, stderr := run(t)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "send-test-alert")

	code, _, stderr = run(t, "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)

	code, stdout, _ := run(t, "version")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "smartmon dev")

	code, _, stderr = run(t, "trace")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "want one notification id")
}

func TestSendTestAlert(t *testing.T) {
	var got []envelope.Webhook
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var wh envelope.Webhook
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &wh); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, wh)
		auth = append(auth, r.Header.Get("Authorization"))
		status := "stored"
		if len(got) > 2 {
			status = "duplicate"
		}
		_, _ = io.WriteString(w, `{"id":"abc","status":"`+status+`","alerts":1}`)
	}))
	defer srv.Close()
	t.Setenv("SMARTMON_INGEST_TOKEN", "tok")

	code, stdout, stderr := run(t, "send-test-alert", "--url", srv.URL, "--starts-at", "2026-11-26T02:40:00Z")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "smartmon trace abc")
	code, _, _ = run(t, "send-test-alert", "--url", srv.URL, "--resolved", "--starts-at", "2026-11-26T02:40:00Z")
	require.Equal(t, 0, code)
	code, stdout, _ = run(t, "send-test-alert", "--url", srv.URL)
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "duplicate")

	require.Len(t, got, 3)
	require.NoError(t, got[0].Validate(), "the test alert is a valid Alertmanager notification")
	assert.Equal(t, "firing", got[0].Status)
	assert.Equal(t, "resolved", got[1].Status)
	assert.Equal(t, got[0].Alerts[0].StartsAt, got[1].Alerts[0].StartsAt, "--resolved resolves the same alert")
	assert.Equal(t, "Bearer tok", auth[0])

	code, _, stderr = run(t, "send-test-alert", "--url", "http://127.0.0.1:1/api/v1/alerts")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "is `smartmon run` running?")
}

func TestTraceAndDLQCommands(t *testing.T) {
	e := jsxtest.Start(t)
	ctx := context.Background()
	url := e.Server.ClientURL()
	env, err := envelope.New(envelope.SampleCrashLoop(time.Now(), false), time.Now())
	require.NoError(t, err)

	tr, err := trace.Open(ctx, e.JS, 1, zaptest.NewLogger(t))
	require.NoError(t, err)
	tr.Received(ctx, env, "stored", "1 alerts, firing")
	code, stdout, stderr := run(t, "trace", "--nats-url", url, env.ID)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "ingest")
	assert.Contains(t, stdout, "stored")
	code, _, stderr = run(t, "trace", "--nats-url", url, "deadbeef")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no trace")

	code, stdout, _ = run(t, "dlq", "list", "--nats-url", url)
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "no dead letters")

	// A stage gives up on the notification for good.
	cons, err := jsx.EnsureConsumer(ctx, e.JS, jsx.ConsumerEnricher(), 1)
	require.NoError(t, err)
	lctx, cancel := context.WithCancel(ctx)
	var fail atomic.Bool
	fail.Store(true)
	handled := make(chan string, 1)
	loop := jsx.NewLoop(jsx.LoopConfig{Stage: "enricher"}, e.JS, cons, func(_ context.Context, d *jsx.Delivery) error {
		if fail.Load() {
			return retry.Permanent(errors.New("forbidden: pods is forbidden"))
		}
		handled <- d.Envelope.ID
		return nil
	}, zaptest.NewLogger(t), nil)
	done := make(chan struct{})
	go func() { _ = loop.Run(lctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	_, err = jsx.PublishEnvelope(ctx, e.JS, jsx.SubjectReceived, env, "ingest")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, out, _ := run(t, "dlq", "list", "--nats-url", url)
		return strings.Contains(out, env.ID)
	}, 10*time.Second, 20*time.Millisecond)

	code, stdout, _ = run(t, "dlq", "show", "--nats-url", url, "1")
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "forbidden")
	assert.Contains(t, stdout, "KubePodCrashLooping")

	fail.Store(false)
	code, stdout, stderr = run(t, "dlq", "replay", "--nats-url", url, "--all")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "replayed 1 into enricher")
	select {
	case id := <-handled:
		assert.Equal(t, env.ID, id)
	case <-time.After(10 * time.Second):
		t.Fatal("replayed message did not reach the stage")
	}
	code, stdout, _ = run(t, "dlq", "purge", "--nats-url", url)
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "purged 0")

	code, _, stderr = run(t, "dlq", "show", "--nats-url", url, "x")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "not a number")
}
