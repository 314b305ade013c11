package advisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// flight is one model call for one problem. Alerts with the same problem
// that arrive while it runs wait for it instead of starting their own.
type flight struct {
	done chan struct{}
	res  flightResult

	mu sync.Mutex
	// last is the reason the last attempt failed, while retries go on:
	// an alert whose deadline passes meanwhile says so.
	last string
	// due is the latest deadline of the alerts waiting for this flight:
	// an alert that joins on time lifts a flight whose first alert is
	// past its deadline back among the on-time waiters for a model slot.
	due time.Time
}

// raise records the deadline of an alert that joined the flight.
func (f *flight) raise(due time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if due.After(f.due) {
		f.due = due
	}
}

// dueAt is the latest deadline of the flight's alerts.
func (f *flight) dueAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.due
}

func (f *flight) setLast(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = reason
}

func (f *flight) lastFailure() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

type flightResult struct {
	advice *envelope.Advice
	reason string
	// noSlot is true when no model slot came free before the leader's
	// deadline: followers with a later deadline may try again.
	noSlot bool
}

// flights is a single-flight group keyed by problem. Unlike
// x/sync/singleflight each waiter can stop waiting at its own deadline and
// still get the result later (late advice).
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns the flight for key, starting one with start if none runs;
// leader is true for the caller that started it.
func (g *flights) join(key string, due time.Time, start func(*flight)) (f *flight, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[key]; ok {
		f.raise(due)
		return f, false
	}
	f = &flight{done: make(chan struct{}), due: due}
	g.m[key] = f
	start(f)
	return f, true
}

// running returns the flight for key if one is in the air.
func (g *flights) running(key string) (*flight, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.m[key]
	return f, ok
}

func (g *flights) finish(key string, f *flight, r flightResult) {
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	f.res = r
	close(f.done)
}

// runFlight asks the model for advice on env's problem and stores good
// advice in the cache before anyone is told (so the next alert finds it).
func (s *Stage) runFlight(ctx, stop context.Context, kv jetstream.KeyValue, key string, env *envelope.Envelope, due time.Time, prio int, f *flight) {
	// The one cache read of a flight: made after the flight is
	// registered, so advice stored by a flight that ended a moment ago is
	// found rather than asked for again.
	if a := s.cacheGet(ctx, kv, key, due); a != nil {
		s.flights.finish(key, f, flightResult{advice: a})
		return
	}
	r := s.ask(ctx, stop, env, prio, f)
	if r.advice != nil {
		r.advice.ProblemKey = key
		s.cachePut(ctx, kv, key, r.advice)
	}
	s.flights.finish(key, f, r)
}

// ask runs the calls for one problem: a model slot (critical first), the
// call, one repair if the answer breaks the schema, retries with backoff
// for busy/5xx/timeouts as long as another attempt can end inside the
// alert's deadline. Waiting for the slot may go on for late_window past
// the deadline: the alert has gone out without advice by then, and what
// the call brings is late advice (one attempt, no retries).
//
// The deadline that counts is the flight's latest (f.dueAt): alerts of the
// same problem that join later extend it.
func (s *Stage) ask(ctx, stop context.Context, env *envelope.Envelope, prio int, f *flight) flightResult {
	startBy := f.dueAt()
	if s.cfg.LateWindow > 0 {
		startBy = startBy.Add(s.cfg.LateWindow)
	}
	prompt := s.prompts.Build(env)
	s.m.promptTokens.Observe(float64(prompt.Tokens))
	for attempt := 1; ; attempt++ {
		ok, probe, why := s.breaker.allow()
		if !ok {
			return flightResult{reason: "circuit open: " + why}
		}
		release, err := s.waitSlot(ctx, stop, prio, f, startBy)
		if err != nil {
			s.breaker.release(probe)
			if stop.Err() != nil && !time.Now().Before(f.dueAt()) {
				return flightResult{reason: "advisor shutting down"}
			}
			return flightResult{reason: s.deadlineReason(), noSlot: true}
		}
		start := time.Now()
		adv, err := s.callAndParse(ctx, prompt)
		release()
		if err == nil {
			s.breaker.success()
			s.state.markLoaded()
			adv.Duration = time.Since(start)
			return flightResult{advice: adv}
		}
		var ce *CallError
		if !errors.As(err, &ce) {
			ce = &CallError{Kind: KindStream, Msg: err.Error(), Err: err}
		}
		reason := s.backend.Describe(ce)
		if ce.countsForBreaker() && ctx.Err() == nil {
			s.breaker.failure(reason)
		} else {
			s.breaker.release(probe)
		}
		if ctx.Err() != nil {
			return flightResult{reason: "advisor shutting down"}
		}
		if ce.Retryable() {
			f.setLast(reason)
			delay := s.backoff.Delay(attempt)
			// Retry only if the next attempt, taking as long as this
			// one did, can end inside the budget.
			if time.Now().Add(delay + time.Since(start)).Before(f.dueAt()) {
				s.log.Info("model call failed; retrying inside the budget", zap.String("alert_id", env.ID),
					zap.Int("attempt", attempt), zap.Duration("retry_in", delay), zap.String("reason", reason))
				t := time.NewTimer(delay)
				select {
				case <-t.C:
					continue
				case <-ctx.Done():
					t.Stop()
					return flightResult{reason: "advisor shutting down"}
				}
			}
		}
		return flightResult{reason: reason}
	}
}

// waitSlot waits for a model slot until startBy. Once stop ends (the
// advisor is shutting down) a wait past the alert's deadline ends too: it
// could only bring late advice, and the drain should not wait for a slot.
// A wait still inside the deadline goes on until it (its alert is still
// being handled).
func (s *Stage) waitSlot(ctx, stop context.Context, prio int, f *flight, startBy time.Time) (func(), error) {
	sctx, cancel := context.WithDeadline(ctx, startBy)
	defer cancel()
	unhook := context.AfterFunc(stop, func() {
		t := time.AfterFunc(time.Until(f.dueAt()), cancel)
		context.AfterFunc(sctx, func() { t.Stop() })
	})
	defer unhook()
	return s.slots.acquire(sctx, prio, f.dueAt)
}

// callAndParse makes the call and, if the answer breaks the schema, one
// repair call in the same model slot. An answer that stays broken is kept
// as plain text, marked unstructured.
func (s *Stage) callAndParse(ctx context.Context, p Prompt) (*envelope.Advice, error) {
	msgs := p.Messages()
	resp, err := s.call(ctx, msgs)
	if err != nil {
		return nil, err
	}
	adv := &envelope.Advice{
		Status: envelope.AdviceOK, Model: s.cfg.Model, Backend: s.backend.Name(), PromptVersion: PromptVersion,
		PromptTokens: p.Tokens, OutputTokens: resp.OutputTokens, Truncated: resp.Truncated,
	}
	if p.Cut {
		adv.Notes = append(adv.Notes, "evidence was cut to fit the model's context")
	}
	st, dropped, perr := parseAdvice(resp.Content, p.User)
	if perr != nil {
		repairMsgs := append(append([]Message(nil), msgs...),
			Message{Role: "assistant", Content: clip(resp.Content, 4000)},
			Message{Role: "user", Content: repairMessage(perr)})
		if r2, err := s.call(ctx, repairMsgs); err == nil {
			if st2, d2, perr2 := parseAdvice(r2.Content, p.User); perr2 == nil {
				st, dropped, perr = st2, d2, nil
				adv.Repaired, adv.Truncated = true, r2.Truncated
				adv.OutputTokens += r2.OutputTokens
			}
		} else if ctx.Err() != nil {
			return nil, err
		}
	}
	if perr != nil {
		adv.Unstructured = true
		adv.Text = s.prompts.red1(clip(resp.Content, maxPlainText))
		adv.Notes = append(adv.Notes, "the model's answer did not follow the schema: shown as it wrote it, unchecked")
		return adv, nil
	}
	// The model's words are untrusted too: whatever it echoes or invents
	// passes the redactor before it can reach chat.
	st = s.redactAdvice(st)
	adv.Structured = st
	adv.Text = renderAdvice(st)
	if dropped > 0 {
		adv.Notes = append(adv.Notes, fmt.Sprintf("%d quoted evidence lines not found in the data were dropped", dropped))
	}
	if adv.Truncated {
		adv.Notes = append(adv.Notes, "the answer was cut off at the token limit (num_predict)")
	}
	return adv, nil
}

// call is one request to the backend, bounded by call_timeout.
func (s *Stage) call(ctx context.Context, msgs []Message) (ChatResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	s.m.inflight.Inc()
	start := time.Now()
	resp, err := s.backend.Chat(cctx, ChatRequest{Messages: msgs, Schema: adviceSchema})
	s.m.inflight.Dec()
	s.m.callDuration.WithLabelValues(s.backend.Name()).Observe(time.Since(start).Seconds())
	outcome := "ok"
	if err != nil {
		outcome = "error"
		var ce *CallError
		if errors.As(err, &ce) {
			outcome = string(ce.Kind)
		}
	}
	s.m.calls.WithLabelValues(s.backend.Name(), outcome).Inc()
	return resp, err
}

// redactAdvice runs every text of a structured answer through the redactor.
func (s *Stage) redactAdvice(st *envelope.StructuredAdvice) *envelope.StructuredAdvice {
	r := s.prompts.red1
	out := *st
	out.Summary, out.LikelyCause = r(st.Summary), r(st.LikelyCause)
	out.Evidence = make([]string, len(st.Evidence))
	for i, e := range st.Evidence {
		out.Evidence[i] = r(e)
	}
	out.NextSteps = make([]envelope.NextStep, len(st.NextSteps))
	for i, n := range st.NextSteps {
		out.NextSteps[i] = envelope.NextStep{Command: r(n.Command), Why: r(n.Why), Risky: n.Risky}
	}
	return &out
}
