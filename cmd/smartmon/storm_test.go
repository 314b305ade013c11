package main_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/internal/proctest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// stormSize is SMARTMON_STORM_SIZE (`make bench` sets 1000), else 300 to
// keep `make test` short on a small CI machine.
func stormSize(t *testing.T) int {
	t.Helper()
	n := 300
	if v := os.Getenv("SMARTMON_STORM_SIZE"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "SMARTMON_STORM_SIZE")
	}
	return n
}

// stormWebhook is notification i of a storm: its own group and pod, so
// every one is a distinct notification that must reach chat once.
func stormWebhook(i int, start time.Time) envelope.Webhook {
	w := envelope.SampleCrashLoop(start, false)
	pod := fmt.Sprintf("storm-%05d-7d9f8b6c5-x2x7k", i)
	a := &w.Alerts[0]
	a.Labels["pod"] = pod
	a.Fingerprint = fmt.Sprintf("%016x", 0x5707<<32|i)
	w.GroupKey = fmt.Sprintf(`{}:{alertname="KubePodCrashLooping", namespace="payments", pod=%q}`, pod)
	w.GroupLabels = map[string]string{"alertname": "KubePodCrashLooping", "namespace": "payments", "pod": pod}
	w.CommonLabels = a.Labels
	return w
}

// sender posts like Alertmanager: a notification that did not get a 200 is
// sent again (Alertmanager retries 5xx and transport errors).
type sender struct {
	t     *testing.T
	start time.Time
	mu    sync.Mutex
	ids   map[string]bool // notification ids acknowledged with 200
}

func (s *sender) send(ctx context.Context, url string, i int) bool {
	w := stormWebhook(i, s.start)
	code, err := proctest.Post(ctx, url, "", w)
	if err != nil || code != http.StatusOK {
		return false
	}
	id, err := w.NotificationID()
	require.NoError(s.t, err)
	s.mu.Lock()
	s.ids[id] = true
	s.mu.Unlock()
	return true
}

// countAtSink returns how many distinct acknowledged notifications the sink
// got, the ids still missing, and the duplicate posts.
func countAtSink(sink *proctest.Sink, want map[string]bool) (delivered int, missing []string, dups int) {
	seen := map[string]int{}
	for _, env := range sink.Got() {
		seen[env.ID]++
	}
	for id := range want {
		if seen[id] > 0 {
			delivered++
		} else {
			missing = append(missing, id)
		}
	}
	for _, n := range seen {
		dups += n - 1
	}
	return delivered, missing, dups
}

// TestCrashStormLosesNothing sends a storm of distinct notifications to
// `smartmon run`, kills it with SIGKILL at a random point, starts it again
// on the same data dir, sends the rest, and counts at a recording sink: every
// notification acknowledged with 200 is delivered; duplicates are reported
// (goal 0) and must stay within 0.1 % (rounded up to one post).
func TestCrashStormLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs smartmon as a child process")
	}
	n := stormSize(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0)) //nolint:gosec // a test's kill point, not a secret
	killAt := n/5 + rng.IntN(n*3/5)
	t.Logf("storm of %d, kill -9 after %d acknowledged (seed %d)", n, killAt, seed)

	bin := smartmonBinary(t)
	sink := proctest.NewSink(t)
	// A platform answering in 20 ms, with 8 senders posting at once: the
	// pipeline falls behind, so the kill hits notifications in every stage.
	sink.Latency = 20 * time.Millisecond
	dir := t.TempDir()
	env := map[string]string{
		"SMARTMON_WEBHOOK_URL":     sink.Srv.URL,
		"SMARTMON_OLLAMA_URL":      "http://" + proctest.FreeAddr(t), // nothing listens: advice unavailable at once
		"SMARTMON_ADVICE_DEADLINE": "500ms",
		"SMARTMON_LOG_LEVEL":       "warn",
	}
	s := &sender{t: t, start: time.Now().Add(-time.Minute).Truncate(time.Second), ids: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	p := proctest.Start(t, bin, dir, env)
	began := time.Now()
	// sendRange posts notifications [from, to) from 8 concurrent senders,
	// each retrying until it gets a 200, as Alertmanager would.
	sendRange := func(url string, from, to int) {
		next := make(chan int)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 8 {
			wg.Go(func() {
				for i := range next {
					deadline := time.Now().Add(30 * time.Second)
					for !s.send(ctx, url, i) {
						if time.Now().After(deadline) {
							failed.Add(1)
							break
						}
						pace := time.NewTimer(50 * time.Millisecond) // Alertmanager paces its retries too
						<-pace.C
					}
				}
			})
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		require.Zero(t, failed.Load(), "notifications were never accepted")
	}
	sendRange(p.URL(), 0, killAt)
	delivered, _, _ := countAtSink(sink, s.ids)
	t.Logf("killing smartmon: %d acknowledged, %d already at the sink, %d in flight", len(s.ids), delivered, len(s.ids)-delivered)
	p.Kill()
	p = proctest.Start(t, bin, dir, env)
	sendRange(p.URL(), killAt, n)
	sent := time.Since(began)
	require.Len(t, s.ids, n)

	var missing []string
	if !assert.Eventually(t, func() bool {
		_, missing, _ = countAtSink(sink, s.ids)
		return len(missing) == 0
	}, 5*time.Minute, 50*time.Millisecond, "notifications lost after kill -9") {
		logs := p.Logs.String()
		t.Fatalf("%d of %d missing, e.g. %v; smartmon's log (tail):\n%s", len(missing), n, missing[:min(3, len(missing))], logs[max(0, len(logs)-6000):])
	}
	delivered, _, dups := countAtSink(sink, s.ids)
	t.Logf("storm %d: sent in %s, all delivered after %s; lost 0, duplicates %d (%.2f%%)",
		n, sent.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), dups, 100*float64(dups)/float64(n))
	assert.Equal(t, n, delivered)
	assert.LessOrEqual(t, dups, int(math.Ceil(float64(n)*0.001)), "duplicates above 0.1%%")
	for _, env := range sink.Got() {
		require.NotNil(t, env.Advice, "every message carries the advice section")
		assert.Equal(t, envelope.AdviceUnavailable, env.Advice.Status)
	}
}

// TestChatOutageLosesNothing: the chat platform answers 503 to everything
// for a while; once it is back every notification arrives, once.
func TestChatOutageLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs smartmon as a child process")
	}
	const n = 20
	bin := smartmonBinary(t)
	var down atomic.Bool
	var refused atomic.Int64
	down.Store(true)
	// proctest.Sink in front of a switch: while down, every post gets 503.
	sink := proctest.NewSink(t)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			refused.Add(1)
			http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
			return
		}
		sink.Srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	p := proctest.Start(t, bin, t.TempDir(), map[string]string{
		"SMARTMON_WEBHOOK_URL":     front.URL,
		"SMARTMON_OLLAMA_URL":      "http://" + proctest.FreeAddr(t),
		"SMARTMON_ADVICE_DEADLINE": "500ms",
		"SMARTMON_LOG_LEVEL":       "warn",
	})
	s := &sender{t: t, start: time.Now().Add(-time.Minute).Truncate(time.Second), ids: map[string]bool{}}
	ctx := context.Background()
	for i := range n {
		require.True(t, s.send(ctx, p.URL(), i), "notification %d not accepted", i)
	}
	// Down long enough that every notification was refused more than once
	// (the notifier retried through its backoff, none was dropped).
	require.Eventually(t, func() bool { return refused.Load() >= 2*n }, 2*time.Minute, 20*time.Millisecond,
		"the notifier must keep trying while the platform is down")
	assert.Empty(t, sink.Got())
	down.Store(false)
	t.Logf("platform back after %d refused posts", refused.Load())

	require.Eventually(t, func() bool {
		_, missing, _ := countAtSink(sink, s.ids)
		return len(missing) == 0
	}, 3*time.Minute, 50*time.Millisecond, "notifications lost in the outage")
	_, _, dups := countAtSink(sink, s.ids)
	assert.Zero(t, dups, "a notification was posted twice")
}
