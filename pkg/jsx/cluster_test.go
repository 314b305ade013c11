package jsx_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
)

// TestClusterLosesNothingWhenTheStreamLeaderDies runs three clustered
// servers with R3 streams, publishes a storm of notifications as ingest does
// (retrying a failed publish with the same message id, as Alertmanager's
// retry of a 503 would), consumes them through the real consume loop, and
// kills the ALERTS stream leader mid-storm. Every notification whose
// publish was acknowledged must be stored and handled; duplicates are
// counted.
func TestClusterLosesNothingWhenTheStreamLeaderDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	clusterStorm(t, "stream", func(ctx context.Context, js jetstream.JetStream, _ jetstream.Consumer) string {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		s, err := js.Stream(ctx, jsx.StreamAlerts)
		if err != nil || s.CachedInfo().Cluster == nil {
			return ""
		}
		return s.CachedInfo().Cluster.Leader
	})
}

// TestClusterLosesNothingWhenTheConsumerLeaderDies: the server that holds
// the consume loop's pull request dies. The loop notices by missed
// heartbeats and pulls again from the new leader (with the library's
// default 30 s pulls this stalled the stage for 30 s).
func TestClusterLosesNothingWhenTheConsumerLeaderDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	clusterStorm(t, "consumer", func(ctx context.Context, _ jetstream.JetStream, cons jetstream.Consumer) string {
		// A request during an election may go unanswered: ask again
		// rather than wait for the test's deadline.
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		info, err := cons.Info(ctx)
		if err != nil || info.Cluster == nil {
			return ""
		}
		return info.Cluster.Leader
	})
}

// clusterStorm publishes a storm into a three-server cluster, kills the
// server leader() names after 40 % of it, and checks that every
// acknowledged notification is stored once and handled.
func clusterStorm(t *testing.T, what string, leader func(context.Context, jetstream.JetStream, jetstream.Consumer) string) {
	t.Helper()
	const storm = 400
	cl := jsxtest.StartCluster(t, 3)
	_, js := cl.Connect(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A short ack wait: messages in the hands of a consumer whose leader
	// died come back within seconds, not the production 30 s.
	spec := jsx.Consumer{Name: "cluster-test", Filter: jsx.SubjectReceived + ".>", AckWait: 2 * time.Second, MaxAckPending: 256}
	var cons jetstream.Consumer
	require.Eventually(t, func() bool {
		var err error
		cons, err = jsx.EnsureConsumer(ctx, js, spec, 3)
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)

	var (
		mu      sync.Mutex
		handled = map[string]int{}
		total   atomic.Int64
	)
	loop := jsx.NewLoop(jsx.LoopConfig{
		Stage: "cluster-test", Concurrency: 4, AckWait: spec.AckWait, MaxAttempts: 50,
		Backoff: retry.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 2},
	},
		js, cons, func(_ context.Context, d *jsx.Delivery) error {
			mu.Lock()
			handled[d.Envelope.ID]++
			mu.Unlock()
			total.Add(1)
			return nil
		}, zaptest.NewLogger(t), nil)
	lctx, stopLoop := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); _ = loop.Run(lctx) }()
	defer func() { stopLoop(); <-loopDone }()

	var killed string
	published := make([]string, 0, storm)
	var publishRetries int
	for i := range storm {
		if i == storm*2/5 {
			require.Eventually(t, func() bool { killed = leader(ctx, js, cons); return killed != "" }, 10*time.Second, 20*time.Millisecond)
			t.Logf("killing %s leader %s after %d publishes", what, killed, i)
			cl.Kill(killed)
		}
		env := testEnvelope(t, fmt.Sprintf("fp-%04d", i))
		// Ingest answers 503 on a failed publish and Alertmanager
		// retries; here the retry is immediate, with the same id.
		deadline := time.Now().Add(20 * time.Second)
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := jsx.PublishEnvelope(pctx, js, jsx.SubjectReceived, env, "test")
			pcancel()
			if err == nil {
				break
			}
			publishRetries++
			require.True(t, time.Now().Before(deadline), "publish %d kept failing: %v", i, err)
		}
		published = append(published, env.ID)
	}
	require.NotEmpty(t, killed)

	// Every acknowledged publish is stored exactly once (the retries were
	// deduplicated by message id) ...
	require.Eventually(t, func() bool {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		s, err := js.Stream(ictx, jsx.StreamAlerts)
		return err == nil && s.CachedInfo().State.Msgs == storm
	}, 20*time.Second, 50*time.Millisecond, "stream must hold all %d notifications", storm)
	var newLeader string
	require.Eventually(t, func() bool {
		newLeader = leader(ctx, js, cons)
		return newLeader != "" && newLeader != killed
	}, 20*time.Second, 50*time.Millisecond, "a new %s leader", what)
	killedAt := time.Now()

	// ... and handled at least once.
	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, id := range published {
			if handled[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(missing()) == 0 }, 25*time.Second, 50*time.Millisecond,
		"notifications never handled after the leader died")
	mu.Lock()
	dups := int(total.Load()) - len(handled)
	mu.Unlock()
	t.Logf("storm %d: 0 lost, %d duplicate deliveries (%.2f%%), %d publish retries, %s leader %s -> %s, all handled %s after the new leader was seen",
		storm, dups, 100*float64(dups)/storm, publishRetries, what, killed, newLeader, time.Since(killedAt).Round(time.Millisecond))
}
