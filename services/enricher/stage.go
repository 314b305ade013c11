package enricher

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
)

// Option changes how New builds the stage.
type Option func(*options)

type options struct {
	access  *Access
	now     func() time.Time
	backoff *retry.Backoff
}

// WithClient uses the given client and log source instead of resolving
// cluster access (tests, and callers that already have a client). logs may
// be nil to read logs through the client's pods/log API.
func WithClient(kc kubernetes.Interface, logs LogSource) Option {
	return func(o *options) {
		if logs == nil {
			logs = APILogs{Client: kc}
		}
		o.access = &Access{Client: kc, Logs: logs, Where: "supplied client"}
	}
}

// WithAccess uses an already resolved Access (including "no access").
func WithAccess(a Access) Option { return func(o *options) { o.access = &a } }

// WithClock sets the clock used for "ago" in the rendering (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithBackoff sets the retry backoff of the consume loop (tests use short
// ones).
func WithBackoff(b retry.Backoff) Option { return func(o *options) { o.backoff = &b } }

// Stage is the enricher stage.
type Stage struct {
	cfg     Config
	deps    stage.Deps
	log     *zap.Logger
	access  Access
	red     *redact.Redactor
	gather  *Gatherer
	now     func() time.Time
	backoff retry.Backoff
	m       metrics
}

type metrics struct {
	notifications *prometheus.CounterVec
	apiCalls      prometheus.Counter
	lookupErrors  prometheus.Counter
	redactions    *prometheus.CounterVec
	duration      prometheus.Histogram
	bytes         prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartmon_enricher_notifications_total",
			Help: "Notifications enriched, by result: ok, partial (transient errors left evidence out), errors (lookups failed), no_access.",
		}, []string{"result"}),
		apiCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmon_enricher_api_calls_total",
			Help: "Kubernetes API requests made by the enricher.",
		}),
		lookupErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmon_enricher_lookup_errors_total",
			Help: "Lookup problems recorded in enrichments (not found, forbidden, timeouts).",
		}),
		redactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartmon_enricher_redactions_total",
			Help: "Secrets removed from evidence and alert text, by kind.",
		}, []string{"kind"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartmon_enricher_gather_duration_seconds",
			Help:    "Time spent gathering evidence for one notification.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		bytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartmon_enricher_evidence_bytes",
			Help:    "Size of the evidence (text plus structured fields) per notification.",
			Buckets: prometheus.ExponentialBuckets(256, 2, 10),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.notifications, m.apiCalls, m.lookupErrors, m.redactions, m.duration, m.bytes} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("register enricher metrics: %w", err)
		}
	}
	return m, nil
}

// New builds the stage. Cluster access is resolved here (in-cluster, then
// kubeconfig); without it the stage still runs and records why.
func New(cfg Config, deps stage.Deps, opts ...Option) (*Stage, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	red, err := redact.New(cfg.Redact)
	if err != nil {
		return nil, fmt.Errorf("enricher redaction patterns: %w", err)
	}
	log := deps.Log
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Stage{
		cfg: cfg, deps: deps, log: log, red: red, now: time.Now, m: m,
		backoff: retry.Backoff{Initial: 500 * time.Millisecond, Max: 5 * time.Second},
	}
	if o.now != nil {
		s.now = o.now
	}
	if o.backoff != nil {
		s.backoff = *o.backoff
	}
	if o.access != nil {
		s.access = *o.access
	} else {
		s.access = ResolveAccess(cfg)
	}
	if s.access.Client == nil {
		if s.access.Unavailable == "" {
			s.access.Unavailable = "no cluster access: no client"
		}
		log.Warn("enricher runs without Kubernetes evidence", zap.String("reason", s.access.Unavailable),
			zap.String("fix", "run in a cluster with the chart's ServiceAccount, or set KUBECONFIG / enricher.kubeconfig (and SMARTMON_KUBE_CONTEXT)"))
	} else {
		s.gather = NewGatherer(cfg, s.access.Client, s.access.Logs, red)
		s.gather.now = s.now
		log.Info("enricher cluster access", zap.String("cluster", s.access.Where))
	}
	return s, nil
}

// Run consumes received notifications until ctx ends, then drains.
func (s *Stage) Run(ctx context.Context) error {
	spec := jsx.ConsumerEnricher()
	cons, err := jsx.EnsureConsumer(ctx, s.deps.JS, spec, s.deps.NATS.Replicas)
	if err != nil {
		return fmt.Errorf("enricher: %w", err)
	}
	loop := jsx.NewLoop(jsx.LoopConfig{
		Stage: envelope.StageEnricher, Concurrency: s.cfg.Concurrency, MaxAttempts: s.cfg.MaxAttempts,
		Backoff: s.backoff, AckWait: spec.AckWait,
	}, s.deps.JS, cons, s.handle, s.log, s.deps.Observer)
	return loop.Run(ctx)
}

// Check reports the cluster access for /readyz. Missing access is not an
// error: the stage still passes alerts on.
func (s *Stage) Check(ctx context.Context) (string, error) {
	if s.access.Client == nil {
		return s.access.Unavailable, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	type ver struct {
		v   string
		err error
	}
	ch := make(chan ver, 1)
	go func() {
		v, err := s.access.Client.Discovery().ServerVersion()
		if err != nil {
			ch <- ver{err: err}
			return
		}
		ch <- ver{v: v.GitVersion}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Sprintf("cluster %s unreachable: %v (alerts pass on without evidence)", s.access.Where, r.err), nil
		}
		return fmt.Sprintf("cluster %s, Kubernetes %s", s.access.Where, r.v), nil
	case <-ctx.Done():
		return fmt.Sprintf("cluster %s: no answer within %s (alerts pass on without evidence)", s.access.Where, s.cfg.CallTimeout), nil
	}
}

// handle enriches one notification. A transient API problem returns an
// error so the loop retries with backoff; on the final attempt the alert
// goes on partially enriched instead. The alert is never held back.
func (s *Stage) handle(ctx context.Context, d *jsx.Delivery) error {
	start := s.now()
	env := d.Envelope
	res := s.gatherEvidence(ctx, &env.Notification)
	overdue := !env.ReceivedAt.IsZero() && s.now().Sub(env.ReceivedAt) > s.cfg.GiveUpAfter
	if res != nil && res.Transient != nil && !d.Final && !overdue {
		// Retried: rendering what this attempt found would be thrown away.
		return fmt.Errorf("enrich %s (attempt %d): %w", env.ID, d.Attempt, res.Transient)
	}
	enr := s.enrichment(res)
	counts := redact.Counts{}
	counts.Add(enr.Redactions)
	RedactNotification(s.red, &env.Notification, counts)
	if len(counts) > 0 {
		enr.Redactions = counts
	}
	env.Enrichment = enr
	rec := envelope.StageRecord{Stage: envelope.StageEnricher, Started: start.UTC(), Duration: s.now().Sub(start), Attempt: d.Attempt, Errors: enr.Errors}
	switch {
	case !enr.ClusterAccess:
		rec.Note = enr.Unavailable
		s.m.notifications.WithLabelValues("no_access").Inc()
	case enr.Partial:
		rec.Note = "partially enriched after transient errors"
		s.m.notifications.WithLabelValues("partial").Inc()
	case len(enr.Errors) > 0:
		s.m.notifications.WithLabelValues("errors").Inc()
	default:
		s.m.notifications.WithLabelValues("ok").Inc()
	}
	for k, n := range counts {
		s.m.redactions.WithLabelValues(k).Add(float64(n))
	}
	env.Record(rec)
	if _, err := jsx.PublishEnvelope(ctx, s.deps.JS, jsx.SubjectEnriched, env, envelope.StageEnricher); err != nil {
		return fmt.Errorf("enricher: %w", err)
	}
	return nil
}

// Enrich gathers, redacts and renders the evidence for one notification.
// The second result is the transient error that left evidence out, if any;
// the Enrichment is complete either way (Partial is set then).
func (s *Stage) Enrich(ctx context.Context, w *envelope.Webhook) (*envelope.Enrichment, error) {
	res := s.gatherEvidence(ctx, w)
	enr := s.enrichment(res)
	if res == nil {
		return enr, nil
	}
	return enr, res.Transient
}

// gatherEvidence gathers the evidence and counts it in the metrics; nil
// without cluster access.
func (s *Stage) gatherEvidence(ctx context.Context, w *envelope.Webhook) *Result {
	if s.gather == nil {
		return nil
	}
	start := time.Now()
	res := s.gather.Gather(ctx, w)
	s.m.duration.Observe(time.Since(start).Seconds())
	s.m.apiCalls.Add(float64(res.Detail.APICalls))
	s.m.lookupErrors.Add(float64(len(res.Errors)))
	return res
}

// enrichment renders, fits and redacts what gatherEvidence found (nil:
// no cluster access) into the enricher's section.
func (s *Stage) enrichment(res *Result) *envelope.Enrichment {
	if res == nil {
		return &envelope.Enrichment{ClusterAccess: false, Unavailable: s.access.Unavailable, Text: s.access.Unavailable + "\n"}
	}
	now := s.now()
	enr := &envelope.Enrichment{ClusterAccess: true, Errors: res.Errors, Partial: res.Transient != nil}
	enr.Text = fit(&res.Detail, res.Errors, int(s.cfg.Budget), now)
	enr.Headline, enr.KeyEvidence = headline(&res.Detail, now)
	// Everything above was redacted field by field; one more pass over
	// the rendered text is cheap insurance against a field that was not.
	var c redact.Counts
	enr.Text, c = s.red.Redact(enr.Text)
	res.Counts.Add(c)
	enr.Headline, c = s.red.Redact(enr.Headline)
	res.Counts.Add(c)
	for i := range enr.KeyEvidence {
		enr.KeyEvidence[i], c = s.red.Redact(enr.KeyEvidence[i])
		res.Counts.Add(c)
	}
	if len(res.Counts) > 0 {
		enr.Redactions = res.Counts
	}
	enr.Detail = &res.Detail
	return enr
}

// RedactNotification redacts the Alertmanager text in place: group key and
// labels, common and per-alert labels and annotations, URLs. It runs before
// the envelope leaves the enricher, with or without cluster access.
// Redaction is deterministic, so identical labels stay identical.
func RedactNotification(r *redact.Redactor, w *envelope.Webhook, counts redact.Counts) {
	one := func(s string) string {
		out, c := r.Redact(s)
		counts.Add(c)
		return out
	}
	w.GroupKey = one(w.GroupKey)
	w.ExternalURL = one(w.ExternalURL)
	w.GroupLabels = r.RedactMap(w.GroupLabels, counts)
	w.CommonLabels = r.RedactMap(w.CommonLabels, counts)
	w.CommonAnnotations = r.RedactMap(w.CommonAnnotations, counts)
	w.RouteLabels = r.RedactMap(w.RouteLabels, counts)
	for i := range w.Alerts {
		a := &w.Alerts[i]
		a.Labels = r.RedactMap(a.Labels, counts)
		a.Annotations = r.RedactMap(a.Annotations, counts)
		a.GeneratorURL = one(a.GeneratorURL)
	}
}
