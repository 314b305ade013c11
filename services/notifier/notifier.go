// Package notifier is the last stage: it posts each notification to the
// sinks its routes select (console, Discord, Slack, Teams, a generic
// webhook), once per (notification, sink), and keeps posting when the
// advisor is slow or down.
//
// Three durable consumers feed it:
//   - "notifier" reads advised alerts and posts them;
//   - "notifier-overdue" reads enriched alerts, waits (NakWithDelay) until
//     ReceivedAt + advice deadline + grace, and posts with "advice
//     unavailable" whatever was not posted by then, so an advisor that is
//     down never holds an alert back;
//   - "notifier-followup" reads late advice: Discord edits its message,
//     Slack and Teams get a compact follow-up.
//
// Claims in the CLAIMS bucket make every (notification, sink) post happen
// once, whichever consumer gets there first and however often JetStream
// redelivers; retries go through the consume loop (the handler's error
// carries the delay), never through sleeps in the handler.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/httpx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/console"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/discord"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/slack"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/teams"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/webhook"
)

// Option adjusts a stage for tests or for the all-in-one binary.
type Option func(*options)

type options struct {
	console   io.Writer
	transport http.RoundTripper
	now       func() time.Time
}

// WithConsole sets where the console sink writes (default os.Stdout).
func WithConsole(w io.Writer) Option { return func(o *options) { o.console = w } }

// WithTransport sets the HTTP transport of every sink.
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

type sinkEntry struct {
	name string
	typ  string
	n    message.Notifier
	// turn holds one token: a sink posts a message and records that it
	// did (the claim) before its next post leaves. A crash can then leave
	// at most one message per sink that the platform took but the claims
	// do not know of, which is the one post a restart may repeat.
	turn chan struct{}
}

func newSink(name, typ string, n message.Notifier) sinkEntry {
	return sinkEntry{name: name, typ: typ, n: n, turn: make(chan struct{}, 1)}
}

// take waits for the sink's turn; done gives it back.
func (sk sinkEntry) take(ctx context.Context) error {
	select {
	case sk.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sink %s: waiting for the post in flight: %w", sk.name, ctx.Err())
	}
}

func (sk sinkEntry) done() { <-sk.turn }

// Stage is the notifier.
type Stage struct {
	cfg    Config
	deps   stage.Deps
	log    *zap.Logger
	http   *httpx.Client
	sinks  map[string]sinkEntry
	router *Router
	now    func() time.Time

	posts    *prometheus.CounterVec
	failures *prometheus.CounterVec
	skipped  *prometheus.CounterVec
	takeover prometheus.Counter
}

// New validates cfg and builds the sinks. It does no network I/O; Run sets
// up streams, consumers and the CLAIMS bucket.
func New(cfg Config, deps stage.Deps, opts ...Option) (*Stage, error) {
	cfg.Defaults()
	if err := cfg.loadFiles(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{console: os.Stdout, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	log := deps.Log
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("stage", envelope.StageNotifier))
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	hc, err := httpx.New(httpx.Config{
		Timeout: cfg.HTTPTimeout, MaxWait: cfg.MaxWait, MetricsPrefix: "smartmon_notifier_webhook", Transport: o.transport,
	}, log, reg)
	if err != nil {
		return nil, err
	}
	s := &Stage{cfg: cfg, deps: deps, log: log, http: hc, sinks: map[string]sinkEntry{}, now: o.now}
	var names []string
	if cfg.ConsoleEnabled() {
		s.sinks[ConsoleSink] = newSink(ConsoleSink, "console", console.New(o.console))
		names = append(names, ConsoleSink)
	}
	for _, sc := range cfg.Sinks {
		var n message.Notifier
		switch sc.Type {
		case TypeDiscord:
			n = discord.New(discord.Config{Name: sc.Name, URL: sc.URL, Pace: sc.Pace}, hc)
		case TypeSlack:
			n = slack.New(slack.Config{Name: sc.Name, URL: sc.URL, Pace: sc.Pace}, hc)
		case TypeTeams:
			if teams.Legacy(sc.URL) {
				log.Warn("this Teams URL is a retired Office 365 connector: create a Workflows webhook (\"When a Teams webhook request is received\") and use its URL",
					zap.String("sink", sc.Name))
			}
			n = teams.New(teams.Config{Name: sc.Name, URL: sc.URL, Pace: sc.Pace}, hc)
		case TypeWebhook:
			n = webhook.New(webhook.Config{Name: sc.Name, URL: sc.URL, Secret: sc.Secret}, hc)
		default:
			return nil, fmt.Errorf("notifier: sink %s: unknown type %q", sc.Name, sc.Type)
		}
		s.sinks[sc.Name] = newSink(sc.Name, sc.Type, n)
		names = append(names, sc.Name)
	}
	s.router, err = NewRouter(cfg.Routes, cfg.DefaultRoute, names)
	if err != nil {
		return nil, err
	}
	s.posts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartmon_notifier_posts_total",
		Help: "Messages delivered, by sink and kind (notify, edit, followup).",
	}, []string{"sink", "kind"})
	s.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartmon_notifier_failures_total",
		Help: "Failed delivery attempts, by sink and decision (retry, permanent).",
	}, []string{"sink", "decision"})
	s.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartmon_notifier_skipped_total",
		Help: "Deliveries skipped because the (notification, sink) was already posted.",
	}, []string{"sink"})
	s.takeover = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "smartmon_notifier_claims_taken_over_total",
		Help: "Posts in flight of a notifier that stopped (heartbeat missing or stale, or lease run out), taken over by this one; each may have reached the platform twice.",
	})
	for _, c := range []prometheus.Collector{s.posts, s.failures, s.skipped, s.takeover} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register notifier metrics: %w", err)
		}
	}
	return s, nil
}

// Sinks lists the configured sink names (console first), for startup logs.
func (s *Stage) Sinks() []string {
	out := make([]string, 0, len(s.sinks))
	for n := range s.sinks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Run consumes until ctx ends, then drains the three loops and returns.
func (s *Stage) Run(ctx context.Context) error {
	js := s.deps.JS
	if js == nil {
		return errors.New("notifier: no JetStream connection")
	}
	replicas := max(s.deps.NATS.Replicas, 1)
	kv, err := jsx.KeyValue(ctx, js, jsx.BucketClaims, s.cfg.ClaimTTL, replicas)
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	cl, err := newClaims(kv, s.cfg.ClaimLease, s.now, s.log, s.takeover)
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	// The heartbeat outlives the loops: posts finishing during the drain
	// still hold claims.
	beatCtx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	beatDone, err := cl.beat(beatCtx)
	if err != nil {
		stopBeat()
		return fmt.Errorf("notifier: %w", err)
	}
	defer func() {
		stopBeat()
		beatDone()
	}()

	// The handlers work on this run's claims.
	type consumer struct {
		spec jsx.Consumer
		h    func(context.Context, *claims, *jsx.Delivery) error
	}
	consumers := []consumer{
		{jsx.ConsumerNotifier(), s.handleAdvised},
		{jsx.ConsumerNotifierOverdue(), s.handleOverdue},
		{jsx.ConsumerNotifierFollowup(), s.handleFollowup},
	}
	var loops []*jsx.Loop
	for _, c := range consumers {
		cons, err := jsx.EnsureConsumer(ctx, js, c.spec, replicas)
		if err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
		loops = append(loops, jsx.NewLoop(jsx.LoopConfig{
			Stage:       envelope.StageNotifier,
			Concurrency: s.cfg.Concurrency,
			MaxAttempts: s.cfg.MaxAttempts,
			Backoff:     retry.Backoff{Initial: s.cfg.RetryInitial, Max: s.cfg.RetryMax},
			AckWait:     c.spec.AckWait,
		}, js, cons, func(ctx context.Context, d *jsx.Delivery) error { return c.h(ctx, cl, d) },
			s.log.With(zap.String("consumer", c.spec.Name)), s.deps.Observer))
	}
	s.log.Info("notifier running", zap.Strings("sinks", s.Sinks()), zap.String("owner", cl.owner),
		zap.Duration("advice_deadline", s.cfg.AdviceDeadline), zap.Duration("overdue_grace", s.cfg.OverdueGrace))
	var wg sync.WaitGroup
	errs := make([]error, len(loops))
	for i, l := range loops {
		wg.Go(func() { errs[i] = l.Run(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Check reports the sinks and which are dead; it fails only when every
// chat/webhook sink is dead and no console is left.
func (s *Stage) Check(context.Context) (string, error) {
	var parts []string
	alive := 0
	for _, n := range s.Sinks() {
		if reason, dead := s.http.Dead(n); dead {
			parts = append(parts, n+" (dead: "+reason+")")
			continue
		}
		alive++
		parts = append(parts, n)
	}
	detail := "sinks: " + strings.Join(parts, ", ")
	if alive == 0 {
		return detail, errors.New("every sink is dead")
	}
	return detail, nil
}
