package advisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
)

// Reasons that are not a backend's sentence.
const (
	ReasonDeadline = "deadline"
	ReasonResolved = "resolved: no advice needed"
)

// publishTimeout bounds one publish of the advised envelope.
const publishTimeout = 10 * time.Second

// Stage is the advisor stage.
type Stage struct {
	cfg     Config
	deps    stage.Deps
	log     *zap.Logger
	backend Backend
	server  string
	prompts promptBuilder
	slots   *slots
	breaker *breaker
	state   stateBox
	flights flights
	m       *metrics
	obs     jsx.Observer
	backoff retry.Backoff

	// bg tracks model calls and late-advice publishers that outlive the
	// handler that started them.
	bg sync.WaitGroup
}

// Option changes how New builds the stage.
type Option func(*Stage)

// WithBackend replaces the configured backend (tests, benchmarks, or a
// custom server).
func WithBackend(b Backend) Option { return func(s *Stage) { s.backend = b } }

// WithObserver reports every delivery's outcome (the process's loop
// metrics, traces).
func WithObserver(o jsx.Observer) Option { return func(s *Stage) { s.obs = o } }

// WithRedactor shares a redactor configured with extra patterns (the
// enricher's), so both passes remove the same things.
func WithRedactor(r *redact.Redactor) Option { return func(s *Stage) { s.prompts.red = r } }

// New builds the advisor stage. It does no I/O: Run connects and checks the
// model.
func New(cfg Config, deps stage.Deps, opts ...Option) (*Stage, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.JS == nil {
		return nil, errors.New("advisor: no JetStream in deps")
	}
	log := deps.Log
	if log == nil {
		log = zap.NewNop()
	}
	s := &Stage{
		cfg: cfg, deps: deps, log: log.With(zap.String("stage", envelope.StageAdvisor)),
		server:  redactURL(cfg.URL),
		prompts: promptBuilder{numCtx: cfg.NumCtx, numPredict: cfg.NumPredict},
		slots:   newSlots(cfg.Concurrency),
		flights: flights{m: map[string]*flight{}},
		backoff: retry.Backoff{Initial: cfg.RetryInitial, Max: cfg.RetryMax},
		obs:     deps.Observer,
	}
	for _, o := range opts {
		o(s)
	}
	if s.backend == nil {
		var err error
		switch cfg.Backend {
		case BackendOpenAI:
			s.backend, err = NewOpenAI(cfg)
		default:
			s.backend, err = NewOllama(cfg)
		}
		if err != nil {
			return nil, err
		}
	}
	if s.prompts.red == nil {
		r, err := redact.New(redact.Config{})
		if err != nil {
			return nil, fmt.Errorf("advisor: build redactor: %w", err)
		}
		s.prompts.red = r
	}
	s.m = newMetrics(deps.Metrics, func() float64 { return float64(s.slots.waiting()) })
	s.breaker = newBreaker(cfg.BreakerFailures, cfg.BreakerCooldown, func(st int) {
		s.m.breaker.Set(float64(st))
		switch st {
		case breakerOpen:
			s.log.Warn("circuit breaker open: skipping the model for a while", zap.Duration("cooldown", cfg.BreakerCooldown))
		case breakerClosed:
			s.log.Info("circuit breaker closed: the model answers again")
		}
	})
	return s, nil
}

// Run consumes enriched alerts until ctx ends, then drains: handlers finish
// (their alerts are published or redelivered later), calls that would bring
// late advice get DrainTimeout to finish.
func (s *Stage) Run(ctx context.Context) error {
	js := s.deps.JS
	replicas := max(s.deps.NATS.Replicas, 1)
	kv, err := jsx.KeyValue(ctx, js, jsx.BucketAdviceCache, s.cfg.CacheTTL, replicas)
	if err != nil {
		return fmt.Errorf("advisor: %w", err)
	}
	spec, lateSpec := jsx.ConsumerAdvisor(), jsx.ConsumerAdvisorLate()
	cons, err := jsx.EnsureConsumer(ctx, js, spec, replicas)
	if err != nil {
		return fmt.Errorf("advisor: %w", err)
	}
	lateCons, err := jsx.EnsureConsumer(ctx, js, lateSpec, replicas)
	if err != nil {
		return fmt.Errorf("advisor: %w", err)
	}
	s.refresh(ctx)

	jobsCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	var watch sync.WaitGroup
	watch.Go(func() { s.watch(ctx) })

	loop := jsx.NewLoop(jsx.LoopConfig{
		Stage:        envelope.StageAdvisor,
		Concurrency:  s.cfg.Inflight,
		AckWait:      spec.AckWait,
		DrainTimeout: s.cfg.DrainTimeout,
	}, js, cons, s.handler(ctx, jobsCtx, kv), s.log, s.obs)
	late := jsx.NewLoop(jsx.LoopConfig{
		Stage:        envelope.StageAdvisor,
		Concurrency:  s.cfg.Inflight,
		AckWait:      lateSpec.AckWait,
		DrainTimeout: s.cfg.DrainTimeout,
		// Restarts hand the to-do back (not counted), publish errors
		// are retried; past the window the handler drops it itself.
		MaxAttempts: 100,
	}, js, lateCons, s.lateHandler(ctx, jobsCtx, kv), s.log.With(zap.String("consumer", lateSpec.Name)), s.obs)
	var lateErr error
	var lateLoop sync.WaitGroup
	lateLoop.Go(func() { lateErr = late.Run(ctx) })
	err = loop.Run(ctx)
	lateLoop.Wait()
	err = errors.Join(err, lateErr)

	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.DrainTimeout):
		s.log.Warn("drain timeout: abandoning model calls that would have brought late advice")
		cancelJobs()
		<-done
	}
	watch.Wait()
	return err
}

// Check implements stage.Checker: the model's state for /readyz. A missing
// model or server does not make the advisor unready (alerts still flow,
// marked "advice unavailable"), it is shown as the detail.
func (s *Stage) Check(ctx context.Context) (string, error) {
	st := s.state.get()
	if st.Checked.IsZero() {
		st = probe(ctx, s.backend, 5*time.Second)
		s.state.set(st)
	}
	d := st.Detail(s.backend.Name(), s.cfg.Model, s.server)
	if s.breaker.current() == breakerOpen {
		d += "; circuit breaker open"
	}
	return d, nil
}

// State returns the last known model state.
func (s *Stage) State() ModelState { return s.state.get() }

func (s *Stage) watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh(ctx)
		}
	}
}

// refresh checks the model's state; a change is logged once, with the fix.
func (s *Stage) refresh(ctx context.Context) {
	st := probe(ctx, s.backend, min(5*time.Second, s.cfg.CheckInterval))
	if ctx.Err() != nil {
		return
	}
	changed := s.state.set(st)
	s.m.modelUp.Set(boolGauge(st.Reachable))
	s.m.modelPresent.Set(boolGauge(st.Present))
	if st.OK() {
		s.breaker.probeOK()
	}
	if !changed {
		return
	}
	detail := st.Detail(s.backend.Name(), s.cfg.Model, s.server)
	if st.Problem != "" {
		s.log.Warn("advice unavailable until this is fixed; alerts still go out without advice", zap.String("problem", st.Problem))
		return
	}
	s.log.Info("model ready", zap.String("detail", detail))
}

// handler is the consume loop's handler. It always publishes exactly one
// alerts.advised.<id> by the deadline: the wait for advice is bounded by
// the alert's deadline, whatever the loop's concurrency or the model does.
// stop ends when the advisor begins to shut down; jobsCtx outlives it, for
// calls that bring late advice during the drain.
func (s *Stage) handler(stop, jobsCtx context.Context, kv jetstream.KeyValue) jsx.Handler {
	return func(ctx context.Context, d *jsx.Delivery) error {
		env := d.Envelope
		start := time.Now()
		due := env.ReceivedAt.Add(s.cfg.Deadline)
		adv, source, fl := s.advise(ctx, stop, jobsCtx, kv, env, due)
		if adv == nil {
			return fmt.Errorf("advise %s: %w", env.ID, context.Cause(ctx))
		}
		out := withAdvice(env, adv, envelope.StageRecord{
			Stage: envelope.StageAdvisor, Started: start.UTC(), Duration: time.Since(start), Attempt: d.Attempt, Note: source,
		})
		if err := s.publish(ctx, jsx.SubjectAdvised, out); err != nil {
			return fmt.Errorf("advisor: %w", err)
		}
		s.m.advice.WithLabelValues(adv.Status, source).Inc()
		d.Detail = traceDetail(adv, source)
		if fl != nil {
			s.owe(ctx, jobsCtx, env, fl)
		}
		return nil
	}
}

// errStopping hands a late-advice to-do back to JetStream while the advisor
// shuts down; the next advisor carries on with it.
const errStopping = "advisor shutting down: late advice continues after the restart"

// owe records that env's advice is still coming: on alerts.late.<id>,
// which the late loop (lateHandler) works through, so the promise survives
// a restart. If that publish fails, the follow-up is still delivered from
// memory, as long as this process lives.
func (s *Stage) owe(ctx, jobsCtx context.Context, env *envelope.Envelope, f *flight) {
	if err := s.publish(ctx, jsx.SubjectLate, env); err != nil {
		s.log.Warn("cannot record the late-advice to-do; it follows from memory (lost if the advisor restarts first)",
			zap.String("alert_id", env.ID), zap.Error(err))
		s.followup(jobsCtx, env, f)
	}
}

// awaitLate waits for the advice on key until end: from the cache, from
// the flight in the air (the one this alert gave up on at its deadline),
// or, after a restart or when that flight's own window closed first, from
// a new one. It returns nil and why when there is none, or nil when stop
// or ctx ended (the to-do goes back to JetStream).
func (s *Stage) awaitLate(ctx, stop, jobsCtx context.Context, kv jetstream.KeyValue, key string,
	env *envelope.Envelope, due, end time.Time,
) (*envelope.Advice, string) {
	timer := time.NewTimer(time.Until(end))
	defer timer.Stop()
	for {
		// No cache read up front: a running flight is waited for, a new
		// one reads the cache first, and the default case reads it.
		f, ok := s.flights.running(key)
		switch {
		case ok:
			f.raise(due)
		case s.cfg.LateWindow > 0 && time.Now().Before(due.Add(s.cfg.LateWindow)):
			f, _ = s.flights.join(key, due, func(f *flight) {
				s.bg.Go(func() { s.runFlight(jobsCtx, stop, kv, key, env, due, priority(env.Severity()), f) })
			})
		default:
			// No call in the air and none to start: it ended just now
			// (the cache was empty a moment ago), or with the process
			// that made it.
			if a := s.cacheGet(ctx, kv, key, end); a != nil {
				return a, ""
			}
			if s.cfg.LateWindow > 0 {
				return nil, "the model was busy until its late window closed"
			}
			return nil, "no call is running for it"
		}
		select {
		case <-f.done:
		case <-timer.C:
			return nil, "the model did not answer in time"
		case <-stop.Done():
			return nil, ""
		case <-ctx.Done():
			return nil, ""
		}
		switch r := f.res; {
		case r.advice != nil:
			a := *r.advice
			return &a, ""
		case stop.Err() != nil:
			return nil, ""
		case !r.noSlot:
			return nil, r.reason
		}
		// That flight's window closed before this alert's: look again.
	}
}

// lateHandler works through the late-advice to-do. It waits for the
// problem's flight (the one still in the air, or a new one after a
// restart) until the late window and one call's time have passed, and
// publishes what it brings on alerts.followup.<id>. The alert itself went
// out at its deadline; nothing here holds it.
func (s *Stage) lateHandler(stop, jobsCtx context.Context, kv jetstream.KeyValue) jsx.Handler {
	return func(ctx context.Context, d *jsx.Delivery) error {
		env := d.Envelope
		due := env.ReceivedAt.Add(s.cfg.Deadline)
		end := due.Add(max(s.cfg.LateWindow, 0) + s.cfg.CallTimeout)
		if !time.Now().Before(end) || d.Final {
			d.Detail = "no late advice: its window has passed"
			return nil
		}
		key := cacheKey(env, s.backend.Name(), s.cfg.Model)
		adv, why := s.awaitLate(ctx, stop, jobsCtx, kv, key, env, due, end)
		switch {
		case adv == nil && stop.Err() != nil, adv == nil && ctx.Err() != nil:
			return retry.Wait(time.Second, errStopping)
		case adv == nil:
			d.Detail = "no late advice: " + why
			return nil
		}
		if err := s.publishLate(ctx, env, adv, d.Attempt); err != nil {
			return err
		}
		d.Detail = "late advice from " + adv.Model
		return nil
	}
}

// publish sends env on subject.<id>, bounded by publishTimeout.
func (s *Stage) publish(ctx context.Context, subject string, env *envelope.Envelope) error {
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	_, err := jsx.PublishEnvelope(pctx, s.deps.JS, subject, env, envelope.StageAdvisor)
	return err
}

// publishLate publishes advice that came after env's deadline on
// alerts.followup.<id>. adv itself is not changed.
func (s *Stage) publishLate(ctx context.Context, env *envelope.Envelope, adv *envelope.Advice, attempt int) error {
	a := *adv
	a.Late = true
	out := withAdvice(env, &a, envelope.StageRecord{Stage: envelope.StageAdvisor, Started: time.Now().UTC(), Attempt: attempt, Note: "late advice"})
	if err := s.publish(ctx, jsx.SubjectFollowup, out); err != nil {
		return fmt.Errorf("advisor: late advice: %w", err)
	}
	s.m.late.Inc()
	return nil
}

// traceDetail is the advisor's line in `smartmon trace`.
func traceDetail(a *envelope.Advice, source string) string {
	switch a.Status {
	case envelope.AdviceOK:
		s := "advice from " + a.Model
		if source != "" {
			s += " (" + source + ")"
		}
		return s
	case envelope.AdviceSkipped:
		return "no model call: " + a.Reason
	default:
		return "advice unavailable: " + a.Reason
	}
}

// withAdvice returns a copy of env with the advice section and a stage
// record; env itself is not changed.
func withAdvice(env *envelope.Envelope, adv *envelope.Advice, rec envelope.StageRecord) *envelope.Envelope {
	out := *env
	out.Advice = adv
	out.Stages = append(append([]envelope.StageRecord(nil), env.Stages...), rec)
	return &out
}

// advise finds advice for env by due. It returns nil advice only when ctx
// ended (shutdown): the message is then redelivered. fl is set when the
// deadline passed while a call was still running: its result becomes late
// advice.
func (s *Stage) advise(ctx, stop, jobsCtx context.Context, kv jetstream.KeyValue, env *envelope.Envelope, due time.Time) (adv *envelope.Advice, source string, fl *flight) {
	base := envelope.Advice{Model: s.cfg.Model, Backend: s.backend.Name(), PromptVersion: PromptVersion}
	unavailable := func(reason string) *envelope.Advice {
		a := base
		a.Status, a.Reason = envelope.AdviceUnavailable, reason
		return &a
	}
	if !env.Firing() {
		a := base
		a.Status, a.Reason = envelope.AdviceSkipped, ReasonResolved
		return &a, "none", nil
	}
	key := cacheKey(env, s.backend.Name(), s.cfg.Model)
	if !time.Now().Before(due) {
		// Handled after its deadline already (a redelivery): only the
		// cache can still help. Otherwise the flight reads the cache (once
		// per flight, after it is registered, so advice stored by a flight
		// that just ended is found), and alerts that join it share it.
		if a := s.cacheGet(ctx, kv, key, due); a != nil {
			return a, "cache", nil
		}
	}
	if ctx.Err() != nil {
		return nil, "", nil
	}
	prio := priority(env.Severity())
	for {
		if !time.Now().Before(due) {
			return unavailable(s.deadlineReason()), "none", nil
		}
		f, leader := s.flights.join(key, due, func(f *flight) {
			s.bg.Go(func() { s.runFlight(jobsCtx, stop, kv, key, env, due, prio, f) })
		})
		timer := time.NewTimer(time.Until(due))
		select {
		case <-f.done:
			timer.Stop()
			r := f.res
			if r.advice != nil {
				a := *r.advice
				src := "model"
				switch {
				case a.Cached:
					src = "cache"
				case !leader:
					a.Cached, src = true, "shared"
				}
				return &a, src, nil
			}
			if r.noSlot && time.Now().Before(due) {
				continue // the leader's budget ran out before ours: try again
			}
			return unavailable(r.reason), "none", nil
		case <-timer.C:
			reason := s.deadlineReason()
			if last := f.lastFailure(); last != "" {
				reason = ReasonDeadline + ": still retrying after " + last
			}
			return unavailable(reason), "none", f
		case <-ctx.Done():
			timer.Stop()
			return nil, "", nil
		}
	}
}

// deadlineReason says why the deadline passed, when the advisor knows more
// than "deadline": a model being loaded or swapped in is not a hang.
func (s *Stage) deadlineReason() string {
	st := s.state.get()
	if note := st.loadingNote(s.cfg.Model, s.server); note != "" {
		return ReasonDeadline + ": " + note + " (a load or swap can take minutes; late advice follows)"
	}
	if n := s.slots.waiting(); n > 0 {
		if s.cfg.LateWindow > 0 {
			return fmt.Sprintf("%s: the model was busy with other alerts (%d waiting); late advice follows if it is free within %s",
				ReasonDeadline, n, s.cfg.LateWindow)
		}
		return fmt.Sprintf("%s: the model was busy with other alerts (%d waiting)", ReasonDeadline, n)
	}
	return ReasonDeadline
}

// followup publishes the result of a call that outlived its alert's
// deadline as late advice on alerts.followup.<id>.
func (s *Stage) followup(jobsCtx context.Context, env *envelope.Envelope, f *flight) {
	s.bg.Go(func() {
		select {
		case <-f.done:
		case <-jobsCtx.Done():
			return
		}
		if f.res.advice == nil {
			return
		}
		if err := s.publishLate(jobsCtx, env, f.res.advice, 0); err != nil {
			s.log.Warn("cannot publish late advice", zap.String("alert_id", env.ID), zap.Error(err))
		}
	})
}

// cacheGet looks the problem up; a slow or failing KV never costs the
// alert its deadline.
func (s *Stage) cacheGet(ctx context.Context, kv jetstream.KeyValue, key string, due time.Time) *envelope.Advice {
	cctx, cancel := context.WithTimeout(ctx, min(2*time.Second, max(time.Until(due), 100*time.Millisecond)))
	defer cancel()
	e, err := kv.Get(cctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			s.m.cache.WithLabelValues("miss").Inc()
		} else {
			s.m.cache.WithLabelValues("error").Inc()
			s.log.Debug("advice cache lookup failed", zap.Error(err))
		}
		return nil
	}
	var a envelope.Advice
	if err := json.Unmarshal(e.Value(), &a); err != nil || a.Status != envelope.AdviceOK {
		s.m.cache.WithLabelValues("error").Inc()
		return nil
	}
	s.m.cache.WithLabelValues("hit").Inc()
	a.Cached, a.Late = true, false
	return &a
}

func (s *Stage) cachePut(ctx context.Context, kv jetstream.KeyValue, key string, a *envelope.Advice) {
	data, err := json.Marshal(a)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := kv.Put(cctx, key, data); err != nil {
		s.log.Warn("cannot store advice in the cache; the next alert of this problem asks the model again", zap.Error(err))
	}
}
