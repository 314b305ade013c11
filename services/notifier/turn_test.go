package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
)

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
	release := make(chan struct{})
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env envelope.Envelope
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got[env.ID]++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	cfg := fastConfig(sink("hook", notifier.TypeWebhook, srv.URL))
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
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	}, 10*time.Second, 10*time.Millisecond)
	for range 20 {
		assert.Equal(t, 1, pendingClaims(t, e, "hook"), "claims pending while one post is in flight")
	}
	close(release)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	}, 10*time.Second, 10*time.Millisecond)
	settled(t, e, "notifier")
	mu.Lock()
	defer mu.Unlock()
	for id, c := range got {
		assert.Equal(t, 1, c, "posts of %s", id)
	}
	assert.Zero(t, pendingClaims(t, e, "hook"))
}
