package jsx_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
)

func TestDeadLetterListReplayPurge(t *testing.T) {
	e := jsxtest.Start(t)
	var broken atomic.Bool
	broken.Store(true)
	handled := make(chan string, 10)
	runLoop(t, e, jsx.LoopConfig{}, func(_ context.Context, d *jsx.Delivery) error {
		if broken.Load() {
			return retry.Permanent(errors.New("kube API forbidden"))
		}
		handled <- d.Envelope.ID
		return nil
	})
	ctx := context.Background()
	a, b := testEnvelope(t, "a"), testEnvelope(t, "b")
	_, err := jsx.PublishEnvelope(ctx, e.JS, jsx.SubjectReceived, a, "test")
	require.NoError(t, err)
	_, err = jsx.PublishEnvelope(ctx, e.JS, jsx.SubjectReceived, b, "test")
	require.NoError(t, err)

	var list []jsx.StoredDeadLetter
	require.Eventually(t, func() bool {
		list, err = jsx.ListDeadLetters(ctx, e.JS, 100)
		return err == nil && len(list) == 2
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "enricher", list[0].Stage)
	assert.Contains(t, list[0].Error, "forbidden")

	broken.Store(false)
	d, err := jsx.ReplayDeadLetter(ctx, e.JS, list[0].Seq)
	require.NoError(t, err)
	select {
	case id := <-handled:
		assert.Equal(t, d.NotificationID, id, "replay re-enters the stage that gave up")
	case <-time.After(10 * time.Second):
		t.Fatal("replayed message was not handled")
	}
	list, err = jsx.ListDeadLetters(ctx, e.JS, 100)
	require.NoError(t, err)
	require.Len(t, list, 1, "a replayed dead letter leaves the DLQ")

	n, err := jsx.PurgeDeadLetters(ctx, e.JS)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), n)
	list, err = jsx.ListDeadLetters(ctx, e.JS, 100)
	require.NoError(t, err)
	assert.Empty(t, list)
}
