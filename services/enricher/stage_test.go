package enricher

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
)

func testDeps(t testing.TB) stage.Deps {
	t.Helper()
	return stage.Deps{Log: zaptest.NewLogger(t), Metrics: prometheus.NewRegistry()}
}

// runStage starts the stage on a real embedded JetStream and returns a
// function that publishes a received notification and waits for its
// enriched envelope.
func runStage(t *testing.T, cfg Config, opts ...Option) func(w *envelope.Webhook) *envelope.Envelope {
	t.Helper()
	js := jsxtest.Start(t)
	deps := testDeps(t)
	deps.JS, deps.NATS = js.JS, js.Config
	s, err := New(cfg, deps, append([]Option{WithClock(func() time.Time { return t0 }), WithBackoff(retry.Backoff{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond, NoJitter: true})}, opts...)...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("stage did not stop")
		}
	})
	return func(w *envelope.Webhook) *envelope.Envelope {
		t.Helper()
		env, err := envelope.New(*w, t0)
		require.NoError(t, err)
		pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer pcancel()
		_, err = jsx.PublishEnvelope(pctx, js.JS, jsx.SubjectReceived, env, "test")
		require.NoError(t, err)
		var got *envelope.Envelope
		require.Eventually(t, func() bool {
			s, err := js.JS.Stream(pctx, jsx.StreamAlerts)
			if err != nil {
				return false
			}
			m, err := s.GetLastMsgForSubject(pctx, jsx.Subject(jsx.SubjectEnriched, env.ID))
			if errors.Is(err, jetstream.ErrMsgNotFound) || err != nil {
				return false
			}
			got, err = envelope.Decode(m.Data)
			return err == nil
		}, 10*time.Second, 20*time.Millisecond)
		return got
	}
}

func TestStagePublishesEnrichedEnvelope(t *testing.T) {
	sc := scenarios()[0]
	send := runStage(t, testConfig(), WithClient(fakeClient(t, runtimeObjects(sc)...), &testLogs{logs: sc.logs}))
	w := webhook(sc.labels)
	w.Alerts[0].Annotations["runbook"] = "ask in https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
	got := send(w)
	require.NotNil(t, got.Enrichment)
	assert.True(t, got.Enrichment.ClusterAccess)
	assert.Contains(t, got.Enrichment.Headline, "restarted 4 times")
	assert.Equal(t, "ask in [REDACTED:slack-webhook]", got.Notification.Alerts[0].Annotations["runbook"])
	assert.Equal(t, 1, got.Enrichment.Redactions["slack-webhook"])
	require.Len(t, got.Stages, 1)
	assert.Equal(t, envelope.StageEnricher, got.Stages[0].Stage)
	assert.Equal(t, 1, got.Stages[0].Attempt)
}

func TestStageWithoutClusterAccessPassesAlertsOn(t *testing.T) {
	send := runStage(t, testConfig(), WithAccess(Access{Unavailable: "no cluster access: not running in a cluster and no kubeconfig found"}))
	w := webhook(alertLabels("pod", "x", "token", "ghp_"+"0123456789abcdefghijABCDEFGHIJ012345"))
	got := send(w)
	assert.False(t, got.Enrichment.ClusterAccess)
	assert.Equal(t, "no cluster access: not running in a cluster and no kubeconfig found", got.Enrichment.Unavailable)
	assert.Equal(t, "[REDACTED:github-token]", got.Notification.Alerts[0].Labels["token"])
	assert.Equal(t, "no cluster access: not running in a cluster and no kubeconfig found", got.Stages[0].Note)
}

// TestTransientErrorsRetryThenPassOnPartially: an API server that keeps
// failing with 5xx gets retried through the consume loop; on the final
// attempt the alert goes on partially enriched, never dead-lettered.
func TestTransientErrorsRetryThenPassOnPartially(t *testing.T) {
	sc := scenarios()[0]
	kc := fakeClient(t, runtimeObjects(sc)...)
	calls := make(chan struct{}, 100)
	kc.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls <- struct{}{}
		return true, nil, apierrors.NewServiceUnavailable("apiserver is shutting down")
	})
	cfg := testConfig()
	cfg.MaxAttempts = 3
	send := runStage(t, cfg, WithClient(kc, &testLogs{logs: sc.logs}))
	got := send(webhook(sc.labels))
	assert.True(t, got.Enrichment.Partial)
	assert.Equal(t, 3, got.Stages[0].Attempt)
	assert.Len(t, calls, 3, "one node lookup per attempt")
	assert.Contains(t, fmt.Sprint(got.Enrichment.Errors), "get node node-1")
	assert.Contains(t, got.Enrichment.Headline, "restarted 4 times", "what could be gathered is there")
}

// TestGiveUpAfterBoundsRetriesInTime: a notification received longer ago
// than give_up_after is passed on at once, even on the first attempt.
func TestGiveUpAfterBoundsRetriesInTime(t *testing.T) {
	sc := scenarios()[0]
	kc := fakeClient(t, runtimeObjects(sc)...)
	kc.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("apiserver is shutting down")
	})
	cfg := testConfig()
	cfg.MaxAttempts = 10
	send := runStage(t, cfg, WithClient(kc, &testLogs{logs: sc.logs}), WithClock(func() time.Time { return t0.Add(time.Minute) }))
	got := send(webhook(sc.labels))
	assert.True(t, got.Enrichment.Partial)
	assert.Equal(t, 1, got.Stages[0].Attempt)
}

func TestAPILogsTail(t *testing.T) {
	kc := fakeClient(t)
	text, cut, err := APILogs{Client: kc}.Tail(context.Background(), "prod", "p", "c", true, 10, 1024)
	require.NoError(t, err)
	assert.Equal(t, "fake logs", text) // what the fake clientset serves
	assert.False(t, cut)
	text, cut, err = APILogs{Client: kc}.Tail(context.Background(), "prod", "p", "c", false, 10, 4)
	require.NoError(t, err)
	assert.Equal(t, "fake", text)
	assert.True(t, cut)
}
