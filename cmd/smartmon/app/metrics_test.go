package app

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
)

// TestMetricsPassPromlint runs the whole pipeline in-process, lets one alert
// go through every stage (with a model, so the model metrics have samples),
// then lints every metric family the process exposes, both as gathered and
// as served on /metrics.
func TestMetricsPassPromlint(t *testing.T) {
	sink := newRecorder(t)
	llm := fakellm.NewOllama(t, fakellm.WithModels("mistral"))
	cfg := testConfig(t, t.TempDir(), map[string]string{
		"SMARTMON_WEBHOOK_URL": sink.srv.URL, "SMARTMON_OLLAMA_URL": llm.URL, "SMARTMON_ADVICE_DEADLINE": "10s",
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, zaptest.NewLogger(t), Options{Console: io.Discard, Registry: reg})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			_ = err
		case <-time.After(60 * time.Second):
		}
	})

	post(t, a.IngestURL(), envelope.SampleCrashLoop(time.Now().Add(-time.Minute), false))
	sink.waitFor(t, 1, 30*time.Second)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint on the gathered families")

	// What the issue asks every deployment to be able to see.
	for _, want := range []string{
		"smartmon_stage_deliveries_total",
		"smartmon_stage_handle_duration_seconds",
		"smartmon_consumer_pending_messages",
		"smartmon_consumer_ack_pending_messages",
		"smartmon_dead_letters",
	} {
		assert.True(t, names[want], "metric %s is missing", want)
	}
	var ours []string
	for n := range names {
		if strings.HasPrefix(n, "smartmon_") {
			ours = append(ours, n)
		}
	}
	sort.Strings(ours)
	t.Logf("%d smartmon metric families: %s", len(ours), strings.Join(ours, " "))

	// The same families as Prometheus scrapes them.
	u, err := url.Parse(a.IngestURL())
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+u.Host+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	problems, err = promlint.New(resp.Body).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint on /metrics")
}
