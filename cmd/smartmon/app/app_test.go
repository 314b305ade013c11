package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
)

// recorder is a generic-webhook receiver that keeps what it got.
type recorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []received
}

type received struct {
	kind string
	env  envelope.Envelope
	at   time.Time
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var env envelope.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, received{kind: req.Header.Get("X-Smartmon-Kind"), env: env, at: time.Now()})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *recorder) waitFor(t *testing.T, n int, within time.Duration) []received {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.all()) >= n }, within, 20*time.Millisecond,
		"want %d deliveries at the sink", n)
	return r.all()
}

// unreachableURL is an address nothing listens on.
func unreachableURL(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}

type running struct {
	app    *App
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's result, valid once done is closed
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		require.NoError(t, r.err)
	case <-time.After(60 * time.Second):
		t.Fatal("app did not stop")
	}
}

func testConfig(t *testing.T, dataDir string, env map[string]string) Config {
	t.Helper()
	base := map[string]string{
		"KUBECONFIG":               filepath.Join(t.TempDir(), "no-kubeconfig"),
		"SMARTMON_OLLAMA_URL":      unreachableURL(t),
		"SMARTMON_ADVICE_DEADLINE": "1s",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := Load("", config.MapEnv(base))
	require.NoError(t, err)
	cfg.DataDir = dataDir
	cfg.Embedded.Listen = ""
	cfg.Ingest.Listen = "127.0.0.1:0"
	off := false
	cfg.Notifier.Console = &off
	cfg.Notifier.OverdueGrace = 500 * time.Millisecond
	cfg.Notifier.RetryInitial = 50 * time.Millisecond
	cfg.Notifier.RetryMax = 200 * time.Millisecond
	require.NoError(t, cfg.Validate())
	return cfg
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, zaptest.NewLogger(t), Options{Console: io.Discard})
	require.NoError(t, err)
	r := &running{app: a, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = a.Run(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
			t.Error("app did not stop")
		}
	})
	return r
}

func post(t *testing.T, url string, w envelope.Webhook) string {
	t.Helper()
	body, err := json.Marshal(w)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	out, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(out))
	var a struct{ Status string }
	require.NoError(t, json.Unmarshal(out, &a))
	return a.Status
}

func TestEndToEndWithoutModel(t *testing.T) {
	sink := newRecorder(t)
	r := start(t, testConfig(t, t.TempDir(), map[string]string{"SMARTMON_WEBHOOK_URL": sink.srv.URL}))
	w := envelope.SampleCrashLoop(time.Now().Add(-time.Minute), false)
	assert.Equal(t, "stored", post(t, r.app.IngestURL(), w))

	got := sink.waitFor(t, 1, 30*time.Second)
	require.Len(t, got, 1)
	env := got[0].env
	assert.Equal(t, "payments-api-7d9f8b6c5-x2x7k", env.Notification.Alerts[0].Labels["pod"])
	require.NotNil(t, env.Advice)
	assert.Equal(t, envelope.AdviceUnavailable, env.Advice.Status)
	assert.NotEmpty(t, env.Advice.Reason)
	require.NotNil(t, env.Enrichment)
	assert.Contains(t, env.Enrichment.Unavailable, "no cluster access")
}

func TestEndToEndWithModel(t *testing.T) {
	sink := newRecorder(t)
	llm := fakellm.NewOllama(t, fakellm.WithModels("mistral"))
	r := start(t, testConfig(t, t.TempDir(), map[string]string{
		"SMARTMON_WEBHOOK_URL": sink.srv.URL, "SMARTMON_OLLAMA_URL": llm.URL, "SMARTMON_ADVICE_DEADLINE": "10s",
	}))
	post(t, r.app.IngestURL(), envelope.SampleCrashLoop(time.Now().Add(-time.Minute), false))
	got := sink.waitFor(t, 1, 30*time.Second)
	env := got[0].env
	require.NotNil(t, env.Advice)
	require.Equal(t, envelope.AdviceOK, env.Advice.Status, "reason: %s", env.Advice.Reason)
	assert.NotEmpty(t, env.Advice.Text)
	assert.Equal(t, 1, llm.Calls())
}

func TestDuplicatesAcrossRestart(t *testing.T) {
	sink := newRecorder(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"SMARTMON_WEBHOOK_URL": sink.srv.URL})
	w := envelope.SampleCrashLoop(time.Now().Add(-time.Minute), false)

	r := start(t, cfg)
	for i := range 5 {
		st := post(t, r.app.IngestURL(), w)
		if i > 0 {
			assert.Equal(t, "duplicate", st)
		}
	}
	sink.waitFor(t, 1, 30*time.Second)
	r.stop(t)

	r = start(t, cfg)
	assert.Equal(t, "duplicate", post(t, r.app.IngestURL(), w), "the duplicate window survives a restart")
	// Let the restarted pipeline work through anything it might redeliver.
	other := envelope.SampleCrashLoop(time.Now().Add(-2*time.Minute), false)
	post(t, r.app.IngestURL(), other)
	sink.waitFor(t, 2, 30*time.Second)
	r.stop(t)
	ids := map[string]int{}
	for _, g := range sink.all() {
		ids[g.env.ID]++
	}
	assert.Len(t, ids, 2)
	for id, n := range ids {
		assert.Equal(t, 1, n, "notification %s delivered %d times", id, n)
	}
}

func TestSlowModelDoesNotDelayTheAlert(t *testing.T) {
	sink := newRecorder(t)
	llm := fakellm.NewOllama(t, fakellm.WithModels("mistral"), fakellm.WithMode(fakellm.Slow), fakellm.WithSlowDelay(time.Minute))
	const deadline = 2 * time.Second
	r := start(t, testConfig(t, t.TempDir(), map[string]string{
		"SMARTMON_WEBHOOK_URL": sink.srv.URL, "SMARTMON_OLLAMA_URL": llm.URL, "SMARTMON_ADVICE_DEADLINE": deadline.String(),
	}))
	sent := time.Now()
	post(t, r.app.IngestURL(), envelope.SampleCrashLoop(time.Now().Add(-time.Minute), false))
	got := sink.waitFor(t, 1, 30*time.Second)
	env := got[0].env
	require.NotNil(t, env.Advice)
	assert.Equal(t, envelope.AdviceUnavailable, env.Advice.Status)
	assert.Contains(t, env.Advice.Reason, "deadline")
	// Generous margin: this checks the alert is not held for the model's
	// minute, not how fast a shared CI machine is.
	assert.Less(t, got[0].at.Sub(sent), deadline+10*time.Second)
}

func TestMain(m *testing.M) {
	// The enricher must not find the developer's real cluster.
	_ = os.Setenv("KUBECONFIG", filepath.Join(os.TempDir(), "smartmon-test-no-kubeconfig"))
	os.Exit(m.Run())
}
