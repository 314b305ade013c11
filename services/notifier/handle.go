package notifier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/trace"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
)

// path says which consumer a delivery came from.
type path int

const (
	pathAdvised path = iota
	pathOverdue
	pathFollowup
)

// errNotDue is the "wait" of the overdue path: the alert's advice may still
// come.
var errNotDue = errors.New("advice not overdue yet")

func (s *Stage) handleAdvised(ctx context.Context, cl *claims, d *jsx.Delivery) error {
	return s.deliverAll(ctx, cl, d, d.Envelope, pathAdvised)
}

// handleOverdue waits until the alert's advice is overdue, then posts
// whatever was not posted yet, marked "advice unavailable".
func (s *Stage) handleOverdue(ctx context.Context, cl *claims, d *jsx.Delivery) error {
	due := d.Envelope.ReceivedAt.Add(s.cfg.AdviceDeadline + s.cfg.OverdueGrace)
	if wait := due.Sub(s.now()); wait > 0 {
		return retry.Wait(wait, errNotDue.Error())
	}
	env := *d.Envelope
	if !env.Advice.Available() {
		reason := fmt.Sprintf("advisor did not answer within %s", s.cfg.AdviceDeadline)
		if env.Firing() {
			env.Advice = &envelope.Advice{Status: envelope.AdviceUnavailable, Reason: reason}
		} else {
			env.Advice = &envelope.Advice{Status: envelope.AdviceSkipped}
		}
	}
	return s.deliverAll(ctx, cl, d, &env, pathOverdue)
}

func (s *Stage) handleFollowup(ctx context.Context, cl *claims, d *jsx.Delivery) error {
	return s.deliverAll(ctx, cl, d, d.Envelope, pathFollowup)
}

// deliverAll posts to every routed sink at once: a slow or failing sink
// neither blocks nor duplicates the others, because each has its own claim
// and a retry only redoes what is not delivered yet.
func (s *Stage) deliverAll(ctx context.Context, cl *claims, d *jsx.Delivery, env *envelope.Envelope, p path) error {
	var seq uint64
	if m := d.Msg(); m != nil {
		if md, err := m.Metadata(); err == nil {
			seq = md.Sequence.Stream
		}
	}
	targets := s.router.Route(env)
	if len(targets) == 0 {
		return nil
	}
	msg := message.Build(env)
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, name := range targets {
		sk, ok := s.sinks[name]
		if !ok {
			continue
		}
		wg.Go(func() { errs[i] = s.deliver(ctx, cl, sk, env, msg, p, seq) })
	}
	wg.Wait()
	return combine(errs)
}

// combine turns per-sink results into the loop's decision: nil when all
// are delivered; a retry when any can still succeed (the shortest delay
// a platform asked for, else backoff); permanent only when everything
// left has failed for good.
func combine(errs []error) error {
	var transient, permanent, waits []error
	var minAfter time.Duration
	allAfter := true
	for _, err := range errs {
		if err == nil {
			continue
		}
		if retry.IsPermanent(err) {
			permanent = append(permanent, err)
			continue
		}
		d, ok := retry.RetryAfter(err)
		if ok && (minAfter == 0 || d < minAfter) {
			minAfter = d
		}
		if retry.IsWait(err) {
			waits = append(waits, err)
		} else {
			transient = append(transient, err)
			allAfter = allAfter && ok
		}
	}
	switch {
	case len(transient) == 0 && len(waits) > 0:
		// Only waiting (and perhaps dead sinks): come back quietly; the
		// dead sinks' claims say failed, so they are not retried.
		return retry.Wait(minAfter, errors.Join(waits...).Error())
	case len(transient) > 0:
		err := errors.Join(append(append(transient, waits...), permanent...)...)
		if allAfter {
			return retry.After(minAfter, err)
		}
		return err
	case len(permanent) > 0:
		return retry.Permanent(errors.Join(permanent...))
	}
	return nil
}

// deliver does one (notification, sink).
func (s *Stage) deliver(ctx context.Context, cl *claims, sk sinkEntry, env *envelope.Envelope, msg *message.Message, p path, seq uint64) error {
	log := s.log.With(zap.String("alert_id", env.ID), zap.String("sink", sk.name))
	nkey := notifyKey(env.ID, sk.name)
	if p == pathFollowup {
		prior, _, err := cl.get(ctx, nkey)
		if err != nil {
			return err
		}
		if prior != nil && prior.State == claimDone {
			if prior.Advice {
				s.skipped.WithLabelValues(sk.name).Inc()
				return nil // the first post already had advice
			}
			return s.post(ctx, cl, sk, followupKey(env.ID, sk.name), env, msg, message.KindFollowup, prior.MessageID, seq, log)
		}
		// Nothing posted yet on this sink: post the full message, advice
		// included; the later "unavailable" delivery will find it done.
	}
	t, err := s.claim(ctx, cl, sk, nkey, seq)
	if err != nil {
		return err
	}
	if !t.proceed {
		if err := blocked(t, sk); err != nil {
			return err
		}
		if p != pathOverdue && env.Advice.Available() && !t.prior.Advice {
			// Posted without advice while this delivery waited (the
			// overdue path won the race, or a follow-up arrived while
			// the first post was in flight): the advice becomes a
			// follow-up.
			return s.post(ctx, cl, sk, followupKey(env.ID, sk.name), env, msg, message.KindFollowup, t.prior.MessageID, seq, log)
		}
		s.skipped.WithLabelValues(sk.name).Inc()
		return nil
	}
	// The living message of the incident, on sinks that can edit. Read
	// and written within the turn, so the next alert of the group edits
	// the message this one posts.
	var living string
	gkey := groupKeyFor(env.Notification.GroupKey, sk.name)
	if sk.typ == TypeDiscord {
		if g, err := cl.group(ctx, gkey); err == nil && g != nil && !g.Resolved {
			living = g.MessageID
		}
	}
	req := message.Request{Env: env, Msg: msg, Kind: message.KindNotify, MessageID: living}
	res, err := s.send(ctx, cl, sk, nkey, t.rev, seq, req, env.Advice.Available(), log)
	if err == nil && res.MessageID != "" {
		if err := cl.putGroup(ctx, gkey, group{MessageID: res.MessageID, Resolved: !env.Firing()}); err != nil {
			log.Warn("could not remember the message id; later updates post anew", zap.Error(err))
		}
	}
	sk.done()
	if err != nil {
		return err
	}
	s.traced(ctx, env.ID, sk, res, req.Kind)
	return nil
}

// post delivers a follow-up under its own claim.
func (s *Stage) post(ctx context.Context, cl *claims, sk sinkEntry, key string, env *envelope.Envelope, msg *message.Message,
	kind message.Kind, messageID string, seq uint64, log *zap.Logger,
) error {
	t, err := s.claim(ctx, cl, sk, key, seq)
	if err != nil {
		return err
	}
	if !t.proceed {
		if err := blocked(t, sk); err != nil {
			return err
		}
		s.skipped.WithLabelValues(sk.name).Inc()
		return nil
	}
	req := message.Request{Env: env, Msg: msg, Kind: kind, MessageID: messageID}
	res, err := s.send(ctx, cl, sk, key, t.rev, seq, req, true, log)
	sk.done()
	if err != nil {
		return err
	}
	s.traced(ctx, env.ID, sk, res, kind)
	return nil
}

// claim waits for the sink's turn, then takes the claim key. When it
// returns proceed, the caller holds the turn and gives it back after send;
// otherwise the turn is given back already.
func (s *Stage) claim(ctx context.Context, cl *claims, sk sinkEntry, key string, seq uint64) (taken, error) {
	if err := sk.take(ctx); err != nil {
		return taken{}, err
	}
	t, err := cl.take(ctx, key, seq)
	if err != nil || !t.proceed {
		sk.done()
	}
	return t, err
}

// send posts req under the claim key (ours at rev) and records the outcome.
// The caller holds the sink's turn from taking the claim until after send:
// a claim is pending only while its post is the one in flight, and the next
// post leaves only once this one is on record. After a crash, then, at most
// one message per sink waits out the claim lease and may be posted twice;
// everything else is posted at once by the restarted notifier.
func (s *Stage) send(ctx context.Context, cl *claims, sk sinkEntry, key string, rev, seq uint64,
	req message.Request, advice bool, log *zap.Logger,
) (message.Result, error) {
	res, err := sk.n.Notify(ctx, req)
	if err != nil {
		return res, s.failed(ctx, cl, sk, key, rev, seq, err, log)
	}
	if err := cl.put(ctx, key, claim{State: claimDone, MessageID: res.MessageID, Advice: advice}); err != nil {
		log.Error("posted, but the claim could not be recorded: a redelivery may post again", zap.Error(err))
	}
	s.count(sk, res, req.Kind)
	return res, nil
}

func (s *Stage) count(sk sinkEntry, res message.Result, kind message.Kind) {
	k := string(kind)
	if res.Edited {
		k = "edit"
	}
	s.posts.WithLabelValues(sk.name, k).Inc()
}

// failed records the outcome of a failed post: a permanent failure is
// written into the claim (this message is not retried on that sink; a
// replay from the dead letters is), a transient one releases the claim so
// the retry can take it.
func (s *Stage) failed(ctx context.Context, cl *claims, sk sinkEntry, key string, rev, seq uint64, err error, log *zap.Logger) error {
	if retry.IsPermanent(err) {
		s.failures.WithLabelValues(sk.name, "permanent").Inc()
		reason := strings.TrimSpace(err.Error())
		if perr := cl.put(ctx, key, claim{State: claimFailed, Reason: reason, Seq: seq}); perr != nil {
			log.Warn("could not record the failure", zap.Error(perr))
		}
		log.Error("sink refused the notification for good", zap.Error(err))
		return err
	}
	s.failures.WithLabelValues(sk.name, "retry").Inc()
	cl.release(ctx, key, rev)
	return err
}

// traced records a delivery in the notification's timeline, so `smartmon
// trace` shows which sinks got it.
func (s *Stage) traced(ctx context.Context, id string, sk sinkEntry, res message.Result, kind message.Kind) {
	if s.deps.Trace == nil {
		return
	}
	detail := string(kind) + " to " + sk.name
	if res.Edited {
		detail += " (edited message " + res.MessageID + ")"
	} else if res.MessageID != "" {
		detail += " (message " + res.MessageID + ")"
	}
	s.deps.Trace.Record(ctx, id, trace.Step{Stage: envelope.StageNotifier, Outcome: "posted", Detail: detail})
}

// blocked is the decision when a claim was not ours to take: wait for the
// delivery in flight (not a failure: it finishes, or its lease runs out
// after a crash, so waiting never dead-letters), stop for a sink that failed
// for good, or nil when it was already delivered.
func blocked(t taken, sk sinkEntry) error {
	switch {
	case t.wait > 0:
		return retry.Wait(t.wait, "sink "+sk.name+": "+errBusy.Error())
	case t.prior != nil && t.prior.State == claimFailed:
		return retry.Permanent(fmt.Errorf("sink %s: %s", sk.name, t.prior.Reason))
	}
	return nil
}
