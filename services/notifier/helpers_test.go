package notifier_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
)

// syncBuffer is a console that tests can read while the stage writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fastConfig keeps every wait of the stage short.
func fastConfig(sinks ...notifier.SinkConfig) notifier.Config {
	return notifier.Config{
		AdviceDeadline: 300 * time.Millisecond,
		OverdueGrace:   100 * time.Millisecond,
		RetryInitial:   20 * time.Millisecond,
		RetryMax:       200 * time.Millisecond,
		MaxWait:        500 * time.Millisecond,
		HTTPTimeout:    time.Second,
		ClaimLease:     2 * time.Second,
		Sinks:          sinks,
	}
}

func sink(name, typ, url string) notifier.SinkConfig {
	return notifier.SinkConfig{Name: name, Type: typ, URL: config.Secret(url), Pace: 10 * time.Millisecond}
}

type running struct {
	stage   *notifier.Stage
	console *syncBuffer
	reg     *prometheus.Registry
}

func startStage(t *testing.T, e *jsxtest.Env, cfg notifier.Config) *running {
	t.Helper()
	return startStageB(t, e, cfg)
}

func startStageB(t testing.TB, e *jsxtest.Env, cfg notifier.Config, obs ...jsx.Observer) *running {
	t.Helper()
	r := &running{console: &syncBuffer{}, reg: prometheus.NewRegistry()}
	deps := stage.Deps{JS: e.JS, NATS: e.Config, Log: zap.NewNop(), Metrics: r.reg, Observer: jsx.Observers(obs)}
	s, err := notifier.New(cfg, deps, notifier.WithConsole(r.console))
	require.NoError(t, err)
	r.stage = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	// Ready when the consumers exist.
	require.Eventually(t, func() bool {
		_, err := e.JS.Consumer(context.Background(), jsx.StreamAlerts, "notifier-followup")
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	return r
}

func testEnvelope(t *testing.T, groupKey string, pods int, status string) *envelope.Envelope {
	t.Helper()
	return testEnvelopeTB(t, groupKey, pods, status)
}

func secret(s string) config.Secret { return config.Secret(s) }

func testEnvelopeTB(t testing.TB, groupKey string, pods int, status string) *envelope.Envelope {
	t.Helper()
	start := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	w := envelope.Webhook{
		Version: "4", GroupKey: groupKey, Status: status, Receiver: "smartmon",
		GroupLabels:       map[string]string{"alertname": "KubePodCrashLooping", "namespace": "payments"},
		CommonLabels:      map[string]string{"alertname": "KubePodCrashLooping", "namespace": "payments", "severity": "critical", "container": "api"},
		CommonAnnotations: map[string]string{"summary": "Pod is crash looping.", "runbook_url": "https://runbooks.example/KubePodCrashLooping"},
		ExternalURL:       "http://localhost:9093",
	}
	suffixes := []string{"x2x7k", "q8m2p", "t4n6z"}
	for i := range pods {
		sfx := fmt.Sprintf("p%04d", i)
		if i < len(suffixes) {
			sfx = suffixes[i]
		}
		a := envelope.Alert{
			Status: status, StartsAt: start, Fingerprint: fmt.Sprintf("fp%s%d", groupKey, i),
			Labels:       map[string]string{"alertname": "KubePodCrashLooping", "namespace": "payments", "pod": "payments-api-7d9f8b6c5-" + sfx, "severity": "critical"},
			GeneratorURL: "http://prometheus:9090/graph?g0.expr=x",
		}
		if status == envelope.StatusResolved {
			a.EndsAt = start.Add(23 * time.Minute)
		}
		w.Alerts = append(w.Alerts, a)
	}
	env, err := envelope.New(w, time.Now())
	require.NoError(t, err)
	env.Enrichment = &envelope.Enrichment{
		ClusterAccess: true,
		Headline:      "container api restarted 7 times in 10m; last exit 1 (Error) 42s ago",
		KeyEvidence:   []string{`"FATAL: config key DB_HOST missing" (previous container log, line 12 of 12)`},
	}
	return env
}

func withAdvice(env *envelope.Envelope) *envelope.Envelope {
	env.Advice = &envelope.Advice{
		Status: envelope.AdviceOK, Model: "mistral", Duration: 4200 * time.Millisecond, Cached: true,
		Text: "The new image expects DB_HOST.",
		Structured: &envelope.StructuredAdvice{
			Summary:     "Missing DB_HOST",
			LikelyCause: "The new image expects DB_HOST, which the Deployment does not set; the container exits at start.",
			Confidence:  "medium",
			Evidence:    []string{"previous log: FATAL: config key DB_HOST missing"},
			NextSteps: []envelope.NextStep{
				{Command: "kubectl -n payments rollout history deploy/payments-api"},
				{Command: "kubectl -n payments rollout undo deploy/payments-api", Risky: true},
			},
		},
	}
	return env
}

func publish(t testing.TB, e *jsxtest.Env, prefix string, env *envelope.Envelope) {
	t.Helper()
	_, err := jsx.PublishEnvelope(context.Background(), e.JS, prefix, env, "test")
	require.NoError(t, err)
}

// redeliver publishes the same envelope again under a new message id, as a
// crash between post and ack (or a replay) would deliver it again.
func redeliver(t testing.TB, e *jsxtest.Env, prefix string, env *envelope.Envelope) {
	t.Helper()
	data, err := env.Encode()
	require.NoError(t, err)
	msg := &nats.Msg{Subject: jsx.Subject(prefix, env.ID), Data: data}
	_, err = e.JS.PublishMsg(context.Background(), msg, jetstream.WithMsgID(fmt.Sprintf("again-%d", time.Now().UnixNano())))
	require.NoError(t, err)
}

// settled waits until a consumer has handled everything stored for it.
func settled(t testing.TB, e *jsxtest.Env, consumer string) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := e.JS.Consumer(context.Background(), jsx.StreamAlerts, consumer)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 15*time.Second, 10*time.Millisecond)
}

func deadLetters(t testing.TB, e *jsxtest.Env) []string {
	t.Helper()
	ctx := context.Background()
	s, err := e.JS.Stream(ctx, jsx.StreamDLQ)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err == nil {
			out = append(out, string(m.Data))
		}
	}
	return out
}

func contains(haystack []byte, needles ...string) bool {
	for _, n := range needles {
		if !strings.Contains(string(haystack), n) {
			return false
		}
	}
	return true
}
