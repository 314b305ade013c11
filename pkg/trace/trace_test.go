package trace_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/trace"
)

func TestTimelineByIDAndFingerprint(t *testing.T) {
	e := jsxtest.Start(t)
	ctx := context.Background()
	r, err := trace.Open(ctx, e.JS, 1, zaptest.NewLogger(t))
	require.NoError(t, err)

	first, err := envelope.New(envelope.SampleCrashLoop(time.Now().Add(-time.Hour), false), time.Now())
	require.NoError(t, err)
	resolved, err := envelope.New(envelope.SampleCrashLoop(time.Now().Add(-time.Hour), true), time.Now())
	require.NoError(t, err)
	r.Received(ctx, first, "stored", "1 alerts, firing")
	r.Record(ctx, first.ID, trace.Step{Stage: "enricher", Outcome: "ack", Detail: "no cluster access"})
	r.Handled("advisor", &jsx.Delivery{Envelope: first, Attempt: 2, Detail: "advice unavailable: deadline"}, jsx.OutcomeAck, time.Millisecond, nil)
	r.Received(ctx, resolved, "stored", "1 alerts, resolved")

	got, err := r.Lookup(ctx, first.ID)
	require.NoError(t, err)
	require.Len(t, got, 1)
	steps := got[0].Steps
	require.Len(t, steps, 3)
	assert.Equal(t, []string{"ingest", "enricher", "advisor"}, []string{steps[0].Stage, steps[1].Stage, steps[2].Stage})
	assert.Equal(t, "advice unavailable: deadline", steps[2].Detail)
	assert.Equal(t, 2, steps[2].Attempt)
	out := trace.Format(got[0])
	assert.Contains(t, out, "KubePodCrashLooping")
	assert.Contains(t, out, "attempt 2")

	byFP, err := r.Lookup(ctx, "3f9a1c2b7d4e5f60")
	require.NoError(t, err)
	require.Len(t, byFP, 2, "the firing and the resolved notification carried this alert")
	assert.Equal(t, first.ID, byFP[0].ID)

	_, err = r.Lookup(ctx, "nope")
	require.ErrorIs(t, err, trace.ErrNotFound)
}

func TestConcurrentStepsAreAllKept(t *testing.T) {
	e := jsxtest.Start(t)
	ctx := context.Background()
	r, err := trace.Open(ctx, e.JS, 1, zaptest.NewLogger(t))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { r.Record(ctx, "abc", trace.Step{Stage: fmt.Sprint("s", i), Outcome: "ack"}) })
	}
	wg.Wait()
	got, err := r.Lookup(ctx, "abc")
	require.NoError(t, err)
	assert.Len(t, got[0].Steps, 8, "optimistic concurrency must not lose a step")
}

func TestOpenExistingNeitherCreatesNorChangesTheBucket(t *testing.T) {
	e := jsxtest.Start(t)
	ctx := context.Background()
	_, err := trace.OpenExisting(ctx, e.JS, zaptest.NewLogger(t))
	require.ErrorIs(t, err, trace.ErrNotFound)
	_, err = e.JS.KeyValue(ctx, jsx.BucketTrace)
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound, "a reader must not create the bucket")

	w, err := trace.Open(ctx, e.JS, 1, zaptest.NewLogger(t))
	require.NoError(t, err)
	w.Record(ctx, "abc", trace.Step{Stage: "enricher", Outcome: "ack"})
	r, err := trace.OpenExisting(ctx, e.JS, zaptest.NewLogger(t))
	require.NoError(t, err)
	got, err := r.Lookup(ctx, "abc")
	require.NoError(t, err)
	require.Len(t, got, 1)
}
