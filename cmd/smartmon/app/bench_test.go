package app

// Benchmarks of the whole pipeline in one process (embedded JetStream with
// its file store). They run only under `make bench` (go test -bench); the
// numbers and the exact commands are in docs/benchmarks/ops.md.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
)

// benchSink is an instant generic-webhook receiver that remembers when each
// notification first arrived.
type benchSink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	first map[string]time.Time
	posts atomic.Int64
}

func newBenchSink(tb testing.TB) *benchSink {
	tb.Helper()
	s := &benchSink{first: map[string]time.Time{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct{ ID string }
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.Header.Get("X-Smartmon-Kind") != "followup" {
			s.posts.Add(1)
		}
		s.mu.Lock()
		if _, ok := s.first[env.ID]; !ok {
			s.first[env.ID] = time.Now()
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *benchSink) arrived(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.first[id]
	return at, ok
}

func (s *benchSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.first)
}

// waitUntil polls cond every 5ms until it holds or the deadline passes.
func waitUntil(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.NewTimer(within)
	defer giveUp.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-giveUp.C:
			tb.Fatalf("%s: not within %s", what, within)
		}
	}
}

// benchApp starts the pipeline on a fresh data dir with quiet logs.
func benchApp(tb testing.TB, env map[string]string, adjust func(*Config)) *App {
	tb.Helper()
	dir := tb.TempDir()
	base := map[string]string{"KUBECONFIG": filepath.Join(dir, "no-kubeconfig")}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := Load("", config.MapEnv(base))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DataDir, cfg.Embedded.Listen, cfg.Ingest.Listen = dir, "", "127.0.0.1:0"
	off := false
	cfg.Notifier.Console = &off
	if adjust != nil {
		adjust(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, zap.NewNop(), Options{Console: io.Discard})
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			_ = err
		case <-time.After(60 * time.Second):
		}
	})
	return a
}

var benchClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func benchPost(tb testing.TB, url string, w envelope.Webhook) {
	tb.Helper()
	body, err := json.Marshal(w)
	if err != nil {
		tb.Fatal(err)
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := benchClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("ingest answered %d", resp.StatusCode)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func reportLatency(b *testing.B, prefix string, ds []time.Duration) {
	b.Helper()
	b.ReportMetric(float64(percentile(ds, .5).Microseconds())/1000, prefix+"-p50-ms")
	b.ReportMetric(float64(percentile(ds, .99).Microseconds())/1000, prefix+"-p99-ms")
}

// group is notification i: a deployment with n crash-looping pods.
func group(i, n int) envelope.Webhook {
	return envelope.SampleGroup(fmt.Sprintf("bench-%07d", i), n, time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC))
}

// BenchmarkWebhookAccept is ingest's accept rate: notifications of 10
// alerts each, 8 concurrent senders, every one stored in the file store
// (acknowledged by JetStream) before the 200. The rest of the pipeline runs
// too (model unreachable, instant sink), as in production.
func BenchmarkWebhookAccept(b *testing.B) {
	sink := newBenchSink(b)
	a := benchApp(b, map[string]string{"SMARTMON_WEBHOOK_URL": sink.srv.URL, "SMARTMON_OLLAMA_URL": "http://127.0.0.1:1", "SMARTMON_ADVICE_DEADLINE": "1s"}, nil)
	var next atomic.Int64
	b.SetParallelism(4) // 4 × GOMAXPROCS senders
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchPost(b, a.IngestURL(), group(int(next.Add(1)), 10))
		}
	})
	b.ReportMetric(float64(b.N*10)/time.Since(start).Seconds(), "alerts/s")
}

// BenchmarkWebhookLatencyAt50rps measures ingest's answer time at a fixed
// 50 requests (500 alerts) per second.
func BenchmarkWebhookLatencyAt50rps(b *testing.B) {
	sink := newBenchSink(b)
	a := benchApp(b, map[string]string{"SMARTMON_WEBHOOK_URL": sink.srv.URL, "SMARTMON_OLLAMA_URL": "http://127.0.0.1:1", "SMARTMON_ADVICE_DEADLINE": "1s"}, nil)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		t0 := time.Now()
		benchPost(b, a.IngestURL(), group(i, 10))
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, "accept", lat)
}

// BenchmarkPipelineOverhead is the time from POST to the message at the
// sink with an instant model and an instant sink, one notification at a
// time: the cost of four stages, three JetStream hops and the trace.
func BenchmarkPipelineOverhead(b *testing.B) {
	sink := newBenchSink(b)
	llm := fakellm.NewOllama(b, fakellm.WithModels("mistral"), fakellm.WithLoaded("mistral"))
	a := benchApp(b, map[string]string{"SMARTMON_WEBHOOK_URL": sink.srv.URL, "SMARTMON_OLLAMA_URL": llm.URL, "SMARTMON_ADVICE_DEADLINE": "10s"}, nil)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		w := group(i, 1)
		id, err := w.NotificationID()
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		benchPost(b, a.IngestURL(), w)
		var at time.Time
		waitUntil(b, 30*time.Second, "notification at the sink", func() bool {
			var ok bool
			at, ok = sink.arrived(id)
			return ok
		})
		lat = append(lat, at.Sub(t0))
	}
	reportLatency(b, "e2e", lat)
	b.ReportMetric(float64(llm.Calls())/float64(b.N), "model-calls/op")
}

// BenchmarkBurst200SlowModel posts 200 single-alert notifications at once
// to a model that takes 30 s per answer (one at a time, like a default
// Ollama), and measures until all 200 are in chat: the overdue path posts
// them without advice at the deadline (45 s default) instead of queueing
// them behind the model for 100 minutes. Measured, not asserted.
func BenchmarkBurst200SlowModel(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		sink := newBenchSink(b)
		llm := fakellm.NewOllama(b, fakellm.WithModels("mistral"), fakellm.WithLoaded("mistral"),
			fakellm.WithLatency(30*time.Second), fakellm.WithParallel(1, 512))
		a := benchApp(b, map[string]string{"SMARTMON_WEBHOOK_URL": sink.srv.URL, "SMARTMON_OLLAMA_URL": llm.URL}, nil)
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() { benchPost(b, a.IngestURL(), group(i, 1)) })
		}
		wg.Wait()
		accepted := time.Since(start)
		waitUntil(b, 5*time.Minute, "200 notifications in chat", func() bool { return sink.count() >= 200 })
		b.ReportMetric(accepted.Seconds(), "s-all-accepted")
		b.ReportMetric(time.Since(start).Seconds(), "s-all-in-chat")
		b.ReportMetric(float64(llm.Calls()), "model-calls")
	}
}

// BenchmarkStormScenario is the storm of journeys.md through the whole
// pipeline: 3 deployments × 50 pods crash-looping, each pod's notification
// repeated 10 times (Alertmanager re-sends with a new startsAt after each
// restart), then all 150 resolved. It reports what reached the model and
// the chat (the advisor shares advice per problem; the notifier keeps one
// living message per incident).
func BenchmarkStormScenario(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		sink := newBenchSink(b)
		llm := fakellm.NewOllama(b, fakellm.WithModels("mistral"), fakellm.WithLoaded("mistral"), fakellm.WithLatency(150*time.Millisecond))
		a := benchApp(b, map[string]string{"SMARTMON_WEBHOOK_URL": sink.srv.URL, "SMARTMON_OLLAMA_URL": llm.URL, "SMARTMON_ADVICE_DEADLINE": "30s"}, nil)
		var ws []envelope.Webhook
		base := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
		for rep := range 10 {
			for _, dep := range []string{"api", "web", "worker"} {
				for pod := range 50 {
					ws = append(ws, stormPod(dep, pod, base.Add(time.Duration(rep)*time.Minute), false))
				}
			}
		}
		for _, dep := range []string{"api", "web", "worker"} {
			for pod := range 50 {
				ws = append(ws, stormPod(dep, pod, base.Add(9*time.Minute), true))
			}
		}
		ids := map[string]bool{}
		for _, w := range ws {
			id, err := w.NotificationID()
			if err != nil {
				b.Fatal(err)
			}
			ids[id] = true
		}
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, w := range ws {
			sem <- struct{}{}
			wg.Go(func() { defer func() { <-sem }(); benchPost(b, a.IngestURL(), w) })
		}
		wg.Wait()
		// Settled: no new post for 3 s after the last one arrived.
		last, lastChange := int64(-1), time.Now()
		waitUntil(b, 5*time.Minute, "storm settled", func() bool {
			if n := sink.posts.Load(); n != last {
				last, lastChange = n, time.Now()
			}
			return time.Since(lastChange) > 3*time.Second && sink.posts.Load() > 0
		})
		b.ReportMetric(float64(len(ws)), "notifications")
		b.ReportMetric(float64(len(ids)), "distinct-ids")
		b.ReportMetric(float64(llm.Calls()), "model-calls")
		b.ReportMetric(float64(sink.posts.Load()), "chat-messages")
		b.ReportMetric(time.Since(start).Seconds()-3, "s-to-settle")
	}
}

// stormPod is one pod's notification (Alertmanager grouping by pod).
func stormPod(dep string, pod int, startsAt time.Time, resolved bool) envelope.Webhook {
	w := envelope.SampleCrashLoop(startsAt, resolved)
	name := fmt.Sprintf("%s-7d9f8b6c5d-%05d", dep, pod)
	a := &w.Alerts[0]
	a.Labels["pod"], a.Labels["container"], a.Labels["namespace"] = name, dep, "shop"
	a.Fingerprint = fmt.Sprintf("%016x", len(dep)*100000+pod)
	w.GroupKey = fmt.Sprintf(`{}:{alertname="KubePodCrashLooping", pod=%q}`, name)
	w.GroupLabels = map[string]string{"alertname": "KubePodCrashLooping", "pod": name}
	w.CommonLabels = a.Labels
	return w
}
