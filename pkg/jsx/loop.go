package jsx

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
)

// Delivery is one message handed to a stage's handler.
type Delivery struct {
	Envelope *envelope.Envelope
	// Attempt is the delivery count, 1 for the first.
	Attempt int
	// Final is true on the last attempt the loop will make: a handler that
	// can pass the alert on partially (errors are data) should do so now
	// instead of returning a transient error.
	Final   bool
	Subject string
	// Detail is what the handler wants the trace to say about this
	// delivery ("advice unavailable: deadline"); optional.
	Detail string
	msg    jetstream.Msg
}

// Msg returns the underlying JetStream message, for headers.
func (d *Delivery) Msg() jetstream.Msg { return d.msg }

// Handler does a stage's work for one delivery. Its error is the decision:
// nil acks; retry.Permanent dead-letters and terminates; retry.After naks
// with exactly that delay; retry.Wait naks quietly (not due yet, not a
// failure, no attempt limit); anything else naks with backoff until the
// attempts run out, then dead-letters.
type Handler func(ctx context.Context, d *Delivery) error

// LoopConfig configures a consume loop.
type LoopConfig struct {
	Stage string
	// Concurrency is how many handlers run at once (default 1).
	Concurrency int
	// MaxAttempts before a transiently failing message is dead-lettered
	// (default 10).
	MaxAttempts int
	// Backoff between attempts (default retry.DefaultBackoff()).
	Backoff retry.Backoff
	// AckWait of the consumer; the loop sends InProgress every third of it
	// while a handler runs (default 30s).
	AckWait time.Duration
	// PoisonAttempts: a message delivered more often than this was never
	// answered (its handler crashes the process, or a wait loops); it is
	// dead-lettered on arrival. Waits count as deliveries, so this is
	// well above MaxAttempts (default max(2*MaxAttempts, 100)).
	PoisonAttempts int
	// DrainTimeout bounds how long in-flight handlers may run after the
	// loop's context ends (default 20s). Their context is cancelled then.
	DrainTimeout time.Duration
}

func (c *LoopConfig) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.PoisonAttempts <= 0 {
		c.PoisonAttempts = max(2*c.MaxAttempts, 100)
	}
	if c.Backoff.Initial == 0 {
		c.Backoff = retry.DefaultBackoff()
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 20 * time.Second
	}
}

// Loop pulls from one durable consumer and runs a handler per message.
type Loop struct {
	cfg  LoopConfig
	js   jetstream.JetStream
	cons jetstream.Consumer
	h    Handler
	log  *zap.Logger
	obs  Observer
}

// Observer is told the outcome of every delivery (metrics, traces). It may
// be nil.
type Observer interface {
	Handled(stage string, d *Delivery, outcome Outcome, dur time.Duration, err error)
}

// Outcome of one delivery.
type Outcome string

// Outcomes.
const (
	OutcomeAck        Outcome = "ack"
	OutcomeRetry      Outcome = "retry"
	OutcomeWait       Outcome = "wait"
	OutcomeDeadLetter Outcome = "dead_letter"
)

// NewLoop builds a consume loop.
func NewLoop(cfg LoopConfig, js jetstream.JetStream, cons jetstream.Consumer, h Handler, log *zap.Logger, obs Observer) *Loop {
	cfg.defaults()
	return &Loop{cfg: cfg, js: js, cons: cons, h: h, log: log.With(zap.String("stage", cfg.Stage)), obs: obs}
}

// Run consumes until ctx ends, then stops pulling, lets in-flight handlers
// finish (up to DrainTimeout) and returns. Messages that were pulled but not
// handled are simply redelivered later: nothing is lost by stopping.
func (l *Loop) Run(ctx context.Context) error {
	// A small pull batch: buffered messages' ack timers already run.
	// Short pulls with frequent heartbeats: when the server holding our
	// pull request dies (a consumer leader change in a cluster), the
	// client only notices by missing two heartbeats. With the library's
	// defaults (30 s pulls, 15 s heartbeats) the stage stalled for 30 s
	// after a leader change; now it re-pulls within 4 s. The cost is one
	// pull request per 10 s per idle consumer.
	it, err := l.cons.Messages(jetstream.PullMaxMessages(l.cfg.Concurrency),
		jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second))
	if err != nil {
		return fmt.Errorf("%s: start consuming: %w", l.cfg.Stage, err)
	}
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
		}
	}()
	sem := make(chan struct{}, l.cfg.Concurrency)
	var wg sync.WaitGroup
	for {
		// Take a worker slot before pulling, so no message sits in our
		// hands with its ack timer running while all workers are busy.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		msg, err := it.Next()
		if err != nil {
			<-sem
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				break
			}
			l.log.Warn("pull failed; retrying", zap.Error(err))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			l.handle(work, msg)
		}()
	}
	close(stopped)
	it.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(l.cfg.DrainTimeout):
		l.log.Warn("drain timeout: cancelling in-flight handlers; their messages will be redelivered")
		cancelWork()
		<-done
	}
	return nil
}

func (l *Loop) handle(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	var attempt int
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered) //nolint:gosec // delivery counts are small
		seq = md.Sequence.Stream
	}
	d := &Delivery{Attempt: attempt, Final: attempt >= l.cfg.MaxAttempts, Subject: msg.Subject(), msg: msg}
	env, err := envelope.Decode(msg.Data())
	if err != nil {
		l.deadLetter(ctx, d, seq, "", retry.Permanent(err), start)
		return
	}
	d.Envelope = env
	log := l.log.With(zap.String("alert_id", env.ID), zap.Int("attempt", attempt))
	if attempt > l.cfg.PoisonAttempts {
		// Seen far more often than allowed without an answer: the
		// handler probably crashes the process on it (a poison message).
		l.deadLetter(ctx, d, seq, env.ID, retry.Permanent(fmt.Errorf("delivered %d times without being handled (max %d)", attempt, l.cfg.PoisonAttempts)), start)
		return
	}

	hctx, cancel := context.WithCancel(ctx)
	hb := make(chan struct{})
	go func() { // keep the message ours while the handler works
		t := time.NewTicker(l.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Debug("in-progress failed", zap.Error(err))
				}
			case <-hb:
				return
			}
		}
	}()
	herr := l.h(hctx, d)
	close(hb)
	cancel()

	switch {
	case herr == nil:
		if err := msg.Ack(); err != nil {
			// The work is done; a redelivery will be deduplicated by
			// the message ids of what the handler published.
			log.Warn("ack failed; the message may be redelivered", zap.Error(err))
		}
		l.observe(d, OutcomeAck, start, nil)
	case retry.IsPermanent(herr):
		l.deadLetter(ctx, d, seq, env.ID, herr, start)
	case retry.IsWait(herr):
		delay, _ := retry.RetryAfter(herr)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("nak failed; the message comes back after the ack wait", zap.Error(err))
		}
		l.observe(d, OutcomeWait, start, herr)
	case d.Final:
		l.deadLetter(ctx, d, seq, env.ID, fmt.Errorf("gave up after %d attempts: %w", attempt, herr), start)
	default:
		delay, _ := l.cfg.Backoff.Decide(herr, attempt)
		log.Warn("handler failed; will retry", zap.Error(herr), zap.Duration("retry_in", delay))
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("nak failed; the message comes back after the ack wait", zap.Error(err))
		}
		l.observe(d, OutcomeRetry, start, herr)
	}
}

func (l *Loop) deadLetter(ctx context.Context, d *Delivery, seq uint64, id string, cause error, start time.Time) {
	log := l.log.With(zap.String("alert_id", id), zap.Int("attempt", d.Attempt))
	dl := DeadLetter{
		Stage: l.cfg.Stage, Subject: d.Subject, Error: cause.Error(), Attempts: uint64(d.Attempt), //nolint:gosec // non-negative
		At: time.Now().UTC(), StreamSeq: seq, NotificationID: id, Data: d.msg.Data(),
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := PublishDeadLetter(pctx, l.js, dl); err != nil {
		// Never drop: if the dead letter cannot be stored, keep the
		// message and try again later.
		log.Error("cannot store dead letter; keeping the message", zap.Error(err), zap.NamedError("cause", cause))
		_ = d.msg.NakWithDelay(l.cfg.Backoff.Delay(d.Attempt))
		l.observe(d, OutcomeRetry, start, err)
		return
	}
	log.Error("dead-lettered", zap.Error(cause), zap.String("fix", "inspect with `smartmon dlq show`, replay with `smartmon dlq replay` once fixed"))
	if err := d.msg.Term(); err != nil {
		log.Warn("term failed", zap.Error(err))
	}
	l.observe(d, OutcomeDeadLetter, start, cause)
}

func (l *Loop) observe(d *Delivery, o Outcome, start time.Time, err error) {
	if l.obs != nil {
		l.obs.Handled(l.cfg.Stage, d, o, time.Since(start), err)
	}
}
