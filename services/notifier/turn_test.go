package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/notifiertest"
)

// holdingHook is a generic webhook receiver that keeps requests waiting
// until release: a platform slow to answer while the test looks at the
// notifier's state. It records each request's Idempotency-Key
// ("<notification id>:<kind>").
type holdingHook struct {
	srv       *httptest.Server
	firstOnly bool // hold only the first request
	held      chan struct{}
	once      sync.Once
	mu        sync.Mutex
	got       []string
}

func newHoldingHook(t *testing.T, firstOnly bool) *holdingHook {
	t.Helper()
	h := &holdingHook{firstOnly: firstOnly, held: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env envelope.Envelope
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, r.Header.Get("Idempotency-Key"))
		hold := !h.firstOnly || len(h.got) == 1
		h.mu.Unlock()
		if hold {
			select {
			case <-h.held:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	t.Cleanup(h.release)
	return h
}

func (h *holdingHook) release() { h.once.Do(func() { close(h.held) }) }

func (h *holdingHook) keys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// pendingClaims counts the claims of a sink that say "pending".
func pendingClaims(t *testing.T, e *jsxtest.Env, sinkName string) int {
	t.Helper()
	ctx := context.Background()
	kv, err := e.JS.KeyValue(ctx, jsx.BucketClaims)
	if err != nil {
		return 0
	}
	keys, err := kv.ListKeys(ctx)
	require.NoError(t, err)
	n := 0
	for k := range keys.Keys() {
		if !strings.HasSuffix(k, "."+sinkName) {
			continue
		}
		v, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var c struct {
			State string `json:"state"`
		}
		if json.Unmarshal(v.Value(), &c) == nil && c.State == "pending" {
			n++
		}
	}
	return n
}

// TestOneClaimPendingPerSink: while a post hangs at the platform, the other
// notifications for that sink wait without a claim, so a crash now could
// repeat (and hold back for the claim lease) only the one in flight.
func TestOneClaimPendingPerSink(t *testing.T) {
	e := jsxtest.Start(t)
	hook := newHoldingHook(t, false)
	cfg := fastConfig(sink("hook", notifier.TypeWebhook, hook.srv.URL))
	cfg.HTTPTimeout = 10 * time.Second
	cfg.ClaimLease = 30 * time.Second
	cfg.Concurrency = 6
	startStage(t, e, cfg)

	const n = 6
	for i := range n {
		publish(t, e, jsx.SubjectAdvised, withAdvice(testEnvelope(t, fmt.Sprintf("turn%d", i), 1, envelope.StatusFiring)))
	}
	// The first post is held at the platform; the others have been
	// handed to workers by now (concurrency 6) and queue for the sink.
	require.Eventually(t, func() bool { return len(hook.keys()) == 1 }, 10*time.Second, 10*time.Millisecond)
	for range 20 {
		assert.Equal(t, 1, pendingClaims(t, e, "hook"), "claims pending while one post is in flight")
	}
	hook.release()
	require.Eventually(t, func() bool { return len(hook.keys()) == n }, 10*time.Second, 10*time.Millisecond)
	settled(t, e, "notifier")
	keys := hook.keys()
	slices.Sort(keys)
	assert.Len(t, slices.Compact(keys), n, "each notification posted once")
	assert.Zero(t, pendingClaims(t, e, "hook"))
}

// waits counts, per notification id, the deliveries a stage answered with
// "wait" (a claim held by someone else).
type waits struct {
	mu sync.Mutex
	n  map[string]int
}

func (w *waits) Handled(_ string, d *jsx.Delivery, o jsx.Outcome, _ time.Duration, _ error) {
	if o != jsx.OutcomeWait || d.Envelope == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n[d.Envelope.ID]++
}

func (w *waits) of(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n[id]
}

// TestPostsOfAStoppedNotifierAreTakenOverWithoutWaitingOutTheLease: claims
// left pending by notifiers that died are taken over, at once when the
// heartbeat is gone, after the stale limit when it stands still (whatever
// time is written in it: clocks differ); a claim whose holder still beats
// is left alone until that holder stops.
func TestPostsOfAStoppedNotifierAreTakenOverWithoutWaitingOutTheLease(t *testing.T) {
	e := jsxtest.Start(t)
	ctx := context.Background()
	hook := notifiertest.NewWebhook(t)
	kv, err := jsx.KeyValue(ctx, e.JS, jsx.BucketClaims, 7*24*time.Hour, 1)
	require.NoError(t, err)
	put := func(key string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		require.NoError(t, err)
		_, err = kv.Put(ctx, key, b)
		require.NoError(t, err)
	}
	type pending struct {
		State string    `json:"state"`
		At    time.Time `json:"at"`
		Owner string    `json:"owner"`
	}
	killed := withAdvice(testEnvelope(t, "killed", 1, envelope.StatusFiring))   // no heartbeat at all
	frozen := withAdvice(testEnvelope(t, "frozen", 1, envelope.StatusFiring))   // heartbeat stands still
	running := withAdvice(testEnvelope(t, "running", 1, envelope.StatusFiring)) // heartbeat moves
	now := time.Now().UTC()
	put("n."+killed.ID+".hook", pending{State: "pending", At: now, Owner: "0badc0de"})
	put("n."+frozen.ID+".hook", pending{State: "pending", At: now, Owner: "f0f0f0f0"})
	// Written "in the future": a holder whose clock runs ahead still
	// counts as stopped once its heartbeat stops moving.
	put("o.f0f0f0f0", map[string]time.Time{"at": now.Add(time.Hour)})
	put("n."+running.ID+".hook", pending{State: "pending", At: now, Owner: "a11ve000"})
	beat := func() { put("o.a11ve000", map[string]time.Time{"at": time.Now().UTC()}) }
	beat()

	cfg := fastConfig(sink("hook", notifier.TypeWebhook, hook.URL()))
	// Stale after 6 s of standing still, lease 30 s: well beyond the
	// test, so any post here is a take-over.
	cfg.ClaimLease = 30 * time.Second
	cfg.AdviceDeadline = 10 * time.Minute
	w := &waits{n: map[string]int{}}
	r := startStageB(t, e, cfg, w)
	for _, env := range []*envelope.Envelope{killed, frozen, running} {
		publish(t, e, jsx.SubjectAdvised, env)
	}
	posted := func() map[string]int {
		out := map[string]int{}
		for _, r := range hook.Accepted() {
			got, err := envelope.Decode(r.Body)
			require.NoError(t, err)
			out[got.ID]++
		}
		return out
	}
	require.Eventually(t, func() bool { return posted()[killed.ID] == 1 }, 10*time.Second, 10*time.Millisecond,
		"the claim of a notifier without a heartbeat was not taken over")
	// The live holder keeps beating meanwhile.
	require.Eventually(t, func() bool {
		beat()
		return posted()[frozen.ID] == 1
	}, 20*time.Second, 50*time.Millisecond, "the claim of a notifier whose heartbeat stood still was not taken over")
	// The live holder keeps beating: the notifier comes back to its claim
	// and waits, more than once, without posting.
	require.Eventually(t, func() bool {
		beat()
		return w.of(running.ID) >= 2
	}, 10*time.Second, 50*time.Millisecond)
	assert.Zero(t, posted()[running.ID], "posted although the holder is alive")
	// The holder stops cleanly (its heartbeat goes): taken over.
	require.NoError(t, kv.Delete(ctx, "o.a11ve000"))
	require.Eventually(t, func() bool { return posted()[running.ID] == 1 }, 10*time.Second, 10*time.Millisecond)
	p := posted()
	assert.Equal(t, map[string]int{killed.ID: 1, frozen.ID: 1, running.ID: 1}, p)
	n, err := testutil.GatherAndCount(r.reg, "smartmon_notifier_claims_taken_over_total")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	mfs, err := r.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "smartmon_notifier_claims_taken_over_total" {
			assert.InDelta(t, 3, mf.GetMetric()[0].GetCounter().GetValue(), 0, "three claims taken over")
		}
	}
}

// TestLateAdviceDuringTheFirstPostIsNotLost: late advice that arrives while
// the first (adviceless) post is still in flight waits for it, then follows
// up, instead of finding the notification done and dropping the advice.
func TestLateAdviceDuringTheFirstPostIsNotLost(t *testing.T) {
	e := jsxtest.Start(t)
	hook := newHoldingHook(t, true)
	cfg := fastConfig(sink("hook", notifier.TypeWebhook, hook.srv.URL))
	cfg.AdviceDeadline = time.Minute
	startStage(t, e, cfg)

	env := testEnvelope(t, "during", 1, envelope.StatusFiring)
	env.Advice = &envelope.Advice{Status: envelope.AdviceUnavailable, Reason: "deadline"}
	publish(t, e, jsx.SubjectAdvised, env)
	require.Eventually(t, func() bool { return len(hook.keys()) == 1 }, 10*time.Second, 10*time.Millisecond)
	late := withAdvice(testEnvelope(t, "during", 1, envelope.StatusFiring))
	late.Advice.Late = true
	publish(t, e, jsx.SubjectFollowup, late)
	// The follow-up is in the notifier's hands (waiting for the sink)
	// before the first post is let go.
	require.Eventually(t, func() bool {
		c, err := e.JS.Consumer(context.Background(), jsx.StreamAlerts, "notifier-followup")
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 1
	}, 10*time.Second, 10*time.Millisecond)
	hook.release()
	settled(t, e, "notifier-followup")
	settled(t, e, "notifier")
	assert.Equal(t, []string{env.ID + ":notify", env.ID + ":followup"}, hook.keys())
}
