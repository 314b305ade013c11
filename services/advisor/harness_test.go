package advisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
)

// margin is how late after its deadline an alert may be published in
// tests: publish round trips on a shared, race-instrumented machine (CI
// runs every package at once on 2 cores). It is generous on purpose: the
// tests tell "did not wait for the model" by the advice's reason, and by
// time only where waiting would have taken far longer than this.
const margin = 2 * time.Second

type harness struct {
	e    *jsxtest.Env
	st   *Stage
	fake *fakellm.Server
	reg  *prometheus.Registry
	// stop shuts the stage down gracefully and waits (also at cleanup).
	stop func()
}

// testConfig is a config with short budgets so the package's tests take
// seconds.
func testConfig(backend, url string) Config {
	c := Config{
		Backend: backend, URL: url, Model: "mistral",
		Deadline: time.Second, CallTimeout: 3 * time.Second,
		RetryInitial: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		BreakerFailures: 3, BreakerCooldown: time.Minute,
		CheckInterval: time.Minute, DrainTimeout: 2 * time.Second,
	}
	c.Defaults()
	return c
}

func startStage(tb testing.TB, cfg Config, fake *fakellm.Server) *harness {
	tb.Helper()
	return startStageOn(tb, jsxtest.Start(tb), cfg, fake)
}

// startStageOn runs a stage on an existing JetStream (a restart).
func startStageOn(tb testing.TB, e *jsxtest.Env, cfg Config, fake *fakellm.Server) *harness {
	tb.Helper()
	reg := prometheus.NewRegistry()
	log := zaptest.NewLogger(tb)
	if _, bench := tb.(*testing.B); bench {
		log = zap.NewNop() // benchmark output stays readable
	}
	st, err := New(cfg, stage.Deps{JS: e.JS, NATS: e.Config, Log: log, Metrics: reg})
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(tb, err)
			case <-time.After(2*cfg.DrainTimeout + 15*time.Second):
				tb.Error("advisor did not stop")
			}
		})
	}
	tb.Cleanup(stop)
	// Wait for the consumer to exist, so publishes are not racing it.
	require.Eventually(tb, func() bool {
		c, err := e.JS.Consumer(context.Background(), jsx.StreamAlerts, jsx.ConsumerAdvisor().Name)
		return err == nil && c != nil
	}, 5*time.Second, 10*time.Millisecond)
	return &harness{e: e, st: st, fake: fake, reg: reg, stop: stop}
}

type alertOpt func(*envelope.Envelope)

func resolved() alertOpt {
	return func(e *envelope.Envelope) {
		e.Notification.Status = envelope.StatusResolved
		for i := range e.Notification.Alerts {
			e.Notification.Alerts[i].Status = envelope.StatusResolved
			e.Notification.Alerts[i].EndsAt = e.Notification.Alerts[i].StartsAt.Add(time.Hour)
		}
	}
}

func withText(s string) alertOpt { return func(e *envelope.Envelope) { e.Enrichment.Text = s } }

// crashEnv is a CrashLoopBackOff notification for one pod of a deployment.
// repeat changes startsAt, so repeats are distinct notifications.
func crashEnv(tb testing.TB, deploy, pod string, repeat int, opts ...alertOpt) *envelope.Envelope {
	tb.Helper()
	labels := map[string]string{
		"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": pod, "container": deploy,
		"reason": "CrashLoopBackOff", "job": "kube-state-metrics",
	}
	w := envelope.Webhook{
		Version: "4", GroupKey: fmt.Sprintf(`{}:{alertname="KubePodCrashLooping", pod=%q}`, pod), Status: envelope.StatusFiring,
		Receiver: "smartmon", GroupLabels: map[string]string{"alertname": "KubePodCrashLooping"},
		CommonLabels:      map[string]string{"alertname": "KubePodCrashLooping", "namespace": "shop"},
		CommonAnnotations: map[string]string{"summary": "Pod is crash looping."},
		Alerts: []envelope.Alert{{
			Status: envelope.StatusFiring, Labels: labels,
			Annotations: map[string]string{"description": fmt.Sprintf("Pod shop/%s (%s) is in waiting state (reason: CrashLoopBackOff).", pod, deploy)},
			StartsAt:    time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC).Add(time.Duration(repeat) * time.Minute),
			Fingerprint: fmt.Sprintf("%016x", len(pod)*7919+repeat), GeneratorURL: "http://prometheus/graph",
		}},
	}
	w.Alerts[0].Fingerprint = fmt.Sprintf("%s-%d", pod, repeat)
	env, err := envelope.New(w, time.Now())
	require.NoError(tb, err)
	env.Enrichment = &envelope.Enrichment{
		ClusterAccess: true,
		Headline:      fmt.Sprintf("container %s restarted 7 times; last exit 1 (Error)", deploy),
		KeyEvidence:   []string{"FATAL: config key DB_HOST missing"},
		Text: fmt.Sprintf("Pod shop/%s\nContainers:\n  %s:\n    State: Waiting (CrashLoopBackOff)\n    Last State: Terminated (Error), exit code 1\n"+
			"Events:\n  Warning BackOff 2m kubelet Back-off restarting failed container\nLogs (previous):\n  starting %s v1.8\n  FATAL: config key DB_HOST missing\n", pod, deploy, deploy),
	}
	for _, o := range opts {
		o(env)
	}
	env.ID, err = env.Notification.NotificationID()
	require.NoError(tb, err)
	return env
}

// publishAll publishes many envelopes asynchronously (the storm) and waits
// for every ack.
func publishAll(tb testing.TB, e *jsxtest.Env, envs []*envelope.Envelope) {
	tb.Helper()
	var futures []jetstream.PubAckFuture
	for _, env := range envs {
		data, err := env.Encode()
		require.NoError(tb, err)
		msg := &nats.Msg{Subject: jsx.Subject(jsx.SubjectEnriched, env.ID), Data: data, Header: nats.Header{}}
		msg.Header.Set(jsx.HeaderStage, "test")
		f, err := e.JS.PublishMsgAsync(msg, jetstream.WithMsgID(jsx.SubjectEnriched+":"+env.ID))
		require.NoError(tb, err)
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			require.NoError(tb, err)
		case <-time.After(30 * time.Second):
			tb.Fatal("publish not acknowledged")
		}
	}
}

func publish(tb testing.TB, e *jsxtest.Env, env *envelope.Envelope) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := jsx.PublishEnvelope(ctx, e.JS, jsx.SubjectEnriched, env, "test")
	require.NoError(tb, err)
}

// published is one message found on a subject, with the server's time.
type published struct {
	env *envelope.Envelope
	at  time.Time
}

// lookup returns the message on prefix.<id>, if any.
func lookup(tb testing.TB, e *jsxtest.Env, prefix, id string) (published, bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.JS.Stream(ctx, jsx.StreamAlerts)
	require.NoError(tb, err)
	m, err := s.GetLastMsgForSubject(ctx, jsx.Subject(prefix, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return published{}, false
	}
	require.NoError(tb, err)
	env, err := envelope.Decode(m.Data)
	require.NoError(tb, err)
	return published{env: env, at: m.Time}, true
}

// waitFor polls until prefix.<id> exists.
//
// within is what the caller expects; the poll gives up only after at least
// 10 s, since it returns as soon as the message is there and a loaded CI
// machine should not fail a test that asserts timing separately (p.at).
func waitFor(tb testing.TB, e *jsxtest.Env, prefix, id string, within time.Duration) published {
	tb.Helper()
	within = max(within, 10*time.Second)
	var p published
	require.Eventually(tb, func() bool {
		var ok bool
		p, ok = lookup(tb, e, prefix, id)
		return ok
	}, within, 10*time.Millisecond, "nothing on %s.%s", prefix, id)
	return p
}

// collect reads every message stored under prefix.>, by notification id.
func collect(tb testing.TB, e *jsxtest.Env, prefix string) map[string]published {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := e.Messages(tb, jsx.StreamAlerts, prefix+".>")
	c, err := e.JS.OrderedConsumer(ctx, jsx.StreamAlerts, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + ".>"}})
	require.NoError(tb, err)
	out := map[string]published{}
	for uint64(len(out)) < want {
		batch, err := c.Fetch(min(500, int(want)-len(out)), jetstream.FetchMaxWait(5*time.Second)) //nolint:gosec // a test stream holds few messages
		require.NoError(tb, err)
		n := 0
		for m := range batch.Messages() {
			n++
			env, err := envelope.Decode(m.Data())
			require.NoError(tb, err)
			md, err := m.Metadata()
			require.NoError(tb, err)
			out[env.ID] = published{env: env, at: md.Timestamp}
		}
		require.NoError(tb, batch.Error())
		require.Positive(tb, n, "no messages fetched")
	}
	return out
}

// publishDistinct publishes n alerts of n different problems (services
// svc0…), as a burst of unrelated incidents would arrive.
func publishDistinct(tb testing.TB, h *harness, n int) []*envelope.Envelope {
	tb.Helper()
	envs := make([]*envelope.Envelope, 0, n)
	for i := range n {
		env := crashEnv(tb, fmt.Sprintf("svc%d", i), fmt.Sprintf("svc%d-0", i), 0)
		envs = append(envs, env)
		publish(tb, h.e, env)
	}
	return envs
}
