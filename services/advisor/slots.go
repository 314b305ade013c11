package advisor

import (
	"context"
	"slices"
	"sync"
	"time"
)

// slots bounds concurrent model calls and hands a freed slot to the most
// urgent waiter: first those still inside their alert's deadline (their
// advice can still be in the first message), then those past it (late
// advice); within each, critical before warning, then first come. A waiter
// gives up when its context ends: waiting for the model never holds an
// alert past its deadline. Waiters are few (one per problem in flight), so
// a linear pick beats a heap whose order would change as deadlines pass.
type slots struct {
	mu      sync.Mutex
	cap     int
	used    int
	seq     uint64
	waiters []*waiter
	now     func() time.Time
}

type waiter struct {
	prio int
	// due is read at every hand-over: the deadline of a flight rises
	// when an alert joins it.
	due     func() time.Time
	seq     uint64
	ready   chan struct{}
	granted bool
}

func newSlots(n int) *slots { return &slots{cap: n, now: time.Now} }

// acquire waits for a slot; the returned func releases it. due says the
// waiter's deadline, which orders the waiters.
func (s *slots) acquire(ctx context.Context, prio int, due func() time.Time) (func(), error) {
	s.mu.Lock()
	if s.used < s.cap && len(s.waiters) == 0 {
		s.used++
		s.mu.Unlock()
		return s.releaseOnce(), nil
	}
	s.seq++
	w := &waiter{prio: prio, due: due, seq: s.seq, ready: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return s.releaseOnce(), nil
	case <-ctx.Done():
		s.mu.Lock()
		if w.granted {
			// Granted while we gave up: pass the slot on.
			s.mu.Unlock()
			s.release()
		} else {
			s.waiters = slices.DeleteFunc(s.waiters, func(x *waiter) bool { return x == w })
			s.mu.Unlock()
		}
		return nil, ctx.Err()
	}
}

func (s *slots) releaseOnce() func() {
	var once sync.Once
	return func() { once.Do(s.release) }
}

func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiters) > 0 {
		now := s.now()
		best := 0
		for i := 1; i < len(s.waiters); i++ {
			if s.waiters[i].before(s.waiters[best], now) {
				best = i
			}
		}
		w := s.waiters[best]
		s.waiters = slices.Delete(s.waiters, best, best+1)
		w.granted = true
		close(w.ready)
		return // the slot moves to w; used stays the same
	}
	s.used--
}

// before orders waiters: on time before late, then priority, then arrival.
func (w *waiter) before(o *waiter, now time.Time) bool {
	late, oLate := !now.Before(w.due()), !now.Before(o.due())
	if late != oLate {
		return oLate
	}
	if w.prio != o.prio {
		return w.prio < o.prio
	}
	return w.seq < o.seq
}

// waiting is the number of calls queued for a slot.
func (s *slots) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}

// priority orders severities: lower is more urgent.
func priority(severity string) int {
	switch severity {
	case "critical", "page", "emergency", "fatal":
		return 0
	case "error", "high", "major":
		return 1
	case "warning", "warn", "medium", "":
		return 2
	default:
		return 3
	}
}
