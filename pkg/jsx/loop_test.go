package jsx_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
)

func testEnvelope(t *testing.T, fp string) *envelope.Envelope {
	t.Helper()
	w := envelope.Webhook{Version: "4", GroupKey: "{}:{alertname=\"X\"}", Status: "firing", Alerts: []envelope.Alert{{
		Status: "firing", Fingerprint: fp, StartsAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Labels: map[string]string{"alertname": "X"},
	}}}
	env, err := envelope.New(w, time.Now())
	require.NoError(t, err)
	return env
}

func runLoop(t *testing.T, e *jsxtest.Env, cfg jsx.LoopConfig, h jsx.Handler) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := jsx.EnsureConsumer(ctx, e.JS, jsx.ConsumerEnricher(), 1)
	require.NoError(t, err)
	cfg.Stage = "enricher"
	l := jsx.NewLoop(cfg, e.JS, cons, h, zaptest.NewLogger(t), nil)
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

func deadLetters(t *testing.T, e *jsxtest.Env) []jsx.DeadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.JS.Stream(ctx, jsx.StreamDLQ)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []jsx.DeadLetter
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var d jsx.DeadLetter
		require.NoError(t, json.Unmarshal(m.Data, &d))
		out = append(out, d)
	}
	return out
}

func TestLoopAcksHandledMessages(t *testing.T) {
	e := jsxtest.Start(t)
	var got sync.Map
	runLoop(t, e, jsx.LoopConfig{Concurrency: 2}, func(_ context.Context, d *jsx.Delivery) error {
		got.Store(d.Envelope.ID, d.Attempt)
		return nil
	})
	ctx := context.Background()
	var ids []string
	for _, fp := range []string{"a", "b", "c"} {
		env := testEnvelope(t, fp)
		ids = append(ids, env.ID)
		dup, err := jsx.PublishEnvelope(ctx, e.JS, jsx.SubjectReceived, env, "test")
		require.NoError(t, err)
		require.False(t, dup)
	}
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if _, ok := got.Load(id); !ok {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	cons, err := e.JS.Consumer(ctx, jsx.StreamAlerts, "enricher")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}, 10*time.Second, 10*time.Millisecond)
}

func TestLoopRetriesThenSucceeds(t *testing.T) {
	e := jsxtest.Start(t)
	var calls atomic.Int32
	done := make(chan int, 1)
	runLoop(t, e, jsx.LoopConfig{Backoff: retry.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}}, func(_ context.Context, d *jsx.Delivery) error {
		if calls.Add(1) < 3 {
			return errors.New("api server timeout")
		}
		done <- d.Attempt
		return nil
	})
	_, err := jsx.PublishEnvelope(context.Background(), e.JS, jsx.SubjectReceived, testEnvelope(t, "a"), "test")
	require.NoError(t, err)
	select {
	case attempt := <-done:
		assert.Equal(t, 3, attempt)
	case <-time.After(20 * time.Second):
		t.Fatal("handler never succeeded")
	}
	assert.Empty(t, deadLetters(t, e))
}

func TestLoopHonoursRetryAfter(t *testing.T) {
	e := jsxtest.Start(t)
	times := make(chan time.Time, 2)
	runLoop(t, e, jsx.LoopConfig{Backoff: retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond}}, func(_ context.Context, d *jsx.Delivery) error {
		times <- time.Now()
		if d.Attempt == 1 {
			return retry.After(700*time.Millisecond, errors.New("429"))
		}
		return nil
	})
	_, err := jsx.PublishEnvelope(context.Background(), e.JS, jsx.SubjectReceived, testEnvelope(t, "a"), "test")
	require.NoError(t, err)
	first, second := recv(t, times), recv(t, times)
	assert.GreaterOrEqual(t, second.Sub(first), 700*time.Millisecond, "redelivered before the Retry-After")
}

func TestLoopDeadLettersPermanentErrors(t *testing.T) {
	e := jsxtest.Start(t)
	runLoop(t, e, jsx.LoopConfig{}, func(context.Context, *jsx.Delivery) error {
		return retry.Permanent(errors.New("webhook answered 404"))
	})
	env := testEnvelope(t, "a")
	_, err := jsx.PublishEnvelope(context.Background(), e.JS, jsx.SubjectReceived, env, "test")
	require.NoError(t, err)
	var dls []jsx.DeadLetter
	require.Eventually(t, func() bool { dls = deadLetters(t, e); return len(dls) == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "enricher", dls[0].Stage)
	assert.Equal(t, env.ID, dls[0].NotificationID)
	assert.Contains(t, dls[0].Error, "404")
	assert.Equal(t, uint64(1), dls[0].Attempts)
	back, err := envelope.Decode(dls[0].Data)
	require.NoError(t, err)
	assert.Equal(t, env.ID, back.ID, "the original message is kept for replay")
}

func TestLoopDeadLettersAfterMaxAttempts(t *testing.T) {
	e := jsxtest.Start(t)
	var finalSeen atomic.Bool
	runLoop(t, e, jsx.LoopConfig{MaxAttempts: 3, Backoff: retry.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}}, func(_ context.Context, d *jsx.Delivery) error {
		if d.Final {
			finalSeen.Store(true)
		}
		return errors.New("still failing")
	})
	_, err := jsx.PublishEnvelope(context.Background(), e.JS, jsx.SubjectReceived, testEnvelope(t, "a"), "test")
	require.NoError(t, err)
	var dls []jsx.DeadLetter
	require.Eventually(t, func() bool { dls = deadLetters(t, e); return len(dls) == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.True(t, finalSeen.Load(), "the handler is told about its last attempt")
	assert.Contains(t, dls[0].Error, "gave up after 3 attempts")
}

func TestLoopDeadLettersUndecodableMessages(t *testing.T) {
	e := jsxtest.Start(t)
	var calls atomic.Int32
	runLoop(t, e, jsx.LoopConfig{}, func(context.Context, *jsx.Delivery) error { calls.Add(1); return nil })
	_, err := e.JS.Publish(context.Background(), "alerts.received.garbage", []byte("{not json"))
	require.NoError(t, err)
	var dls []jsx.DeadLetter
	require.Eventually(t, func() bool { dls = deadLetters(t, e); return len(dls) == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, []byte("{not json"), dls[0].Data)
	assert.Zero(t, calls.Load())
}

func TestLoopDrainsInFlightWorkOnStop(t *testing.T) {
	e := jsxtest.Start(t)
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	cancel := runLoop(t, e, jsx.LoopConfig{}, func(ctx context.Context, _ *jsx.Delivery) error {
		close(started)
		<-release
		finished.Store(ctx.Err() == nil)
		return nil
	})
	_, err := jsx.PublishEnvelope(context.Background(), e.JS, jsx.SubjectReceived, testEnvelope(t, "a"), "test")
	require.NoError(t, err)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never started")
	}
	cancel()
	close(release)
	cons, err := e.JS.Consumer(context.Background(), jsx.StreamAlerts, "enricher")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Stream == 1
	}, 10*time.Second, 10*time.Millisecond)
	assert.True(t, finished.Load(), "in-flight handler kept a live context during drain")
	_ = jetstream.ErrConsumerNotFound
}

func TestDuplicatePublishIsDropped(t *testing.T) {
	e := jsxtest.Start(t)
	env := testEnvelope(t, "a")
	for i := range 5 {
		dup, err := jsx.PublishEnvelope(context.Background(), e.JS, jsx.SubjectReceived, env, "test")
		require.NoError(t, err)
		assert.Equal(t, i > 0, dup)
	}
	assert.Equal(t, uint64(1), e.Messages(t, jsx.StreamAlerts, "alerts.received.>"))
}

func TestLoopWaitsQuietlyWithoutCountingAsFailure(t *testing.T) {
	e := jsxtest.Start(t)
	times := make(chan time.Time, 3)
	runLoop(t, e, jsx.LoopConfig{MaxAttempts: 1}, func(_ context.Context, d *jsx.Delivery) error {
		times <- time.Now()
		if d.Attempt == 1 {
			return retry.Wait(300*time.Millisecond, "advice not overdue yet")
		}
		return nil
	})
	_, err := jsx.PublishEnvelope(context.Background(), e.JS, jsx.SubjectReceived, testEnvelope(t, "a"), "test")
	require.NoError(t, err)
	var got []time.Time
	for len(got) < 2 {
		select {
		case at := <-times:
			got = append(got, at)
		case <-time.After(20 * time.Second):
			t.Fatal("the waiting message never came back")
		}
	}
	assert.GreaterOrEqual(t, got[1].Sub(got[0]), 300*time.Millisecond)
	assert.Empty(t, deadLetters(t, e), "a wait is not a failure, even with MaxAttempts 1")
}

// recv takes the next value or fails the test after 10 s, so a broken loop
// fails fast instead of hanging the suite.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received within 10s")
	}
	var zero T
	return zero
}
