package advisor

import (
	"sync"
	"time"
)

// Breaker states, also the value of the breaker gauge.
const (
	breakerClosed   = 0
	breakerHalfOpen = 1
	breakerOpen     = 2
)

// breaker skips the model quickly while it is down: after `failures`
// consecutive failures it opens; after `cooldown` it lets one probe call
// through (half-open); the probe's success closes it, its failure opens it
// again for another cooldown.
type breaker struct {
	mu       sync.Mutex
	failures int
	cooldown time.Duration
	now      func() time.Time
	onChange func(state int)

	state    int
	fails    int
	openedAt time.Time
	probing  bool
	// reason is the last failure's sentence, shown while open.
	reason string
}

func newBreaker(failures int, cooldown time.Duration, onChange func(int)) *breaker {
	if onChange == nil {
		onChange = func(int) {}
	}
	return &breaker{failures: failures, cooldown: cooldown, now: time.Now, onChange: onChange}
}

// allow reports whether a call may go ahead; when it may not, it returns
// the reason of the failures that opened the breaker. probe is true when
// this call is the half-open probe (its outcome must be recorded).
func (b *breaker) allow() (ok, probe bool, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerClosed:
		return true, false, ""
	case breakerOpen:
		if b.now().Sub(b.openedAt) < b.cooldown {
			return false, false, b.reason
		}
		b.setState(breakerHalfOpen)
		b.probing = true
		return true, true, ""
	default: // half-open: one probe at a time
		if b.probing {
			return false, false, b.reason
		}
		b.probing = true
		return true, true, ""
	}
}

// success records a working call; it closes the breaker.
func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails, b.probing = 0, false
	b.setState(breakerClosed)
}

// failure records a call that says the model is down.
func (b *breaker) failure(reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reason = reason
	b.fails++
	if b.state == breakerHalfOpen || b.fails >= b.failures {
		b.probing = false
		b.openedAt = b.now()
		b.setState(breakerOpen)
	}
}

// release ends a probe that neither succeeded nor failed (cancelled), so
// the next call may probe.
func (b *breaker) release(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
}

// probeOK is the state watcher's word that the server and model answer
// again: an open breaker whose cooldown is over closes without waiting for
// an alert to probe it.
func (b *breaker) probeOK() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == breakerOpen && b.now().Sub(b.openedAt) >= b.cooldown {
		b.fails = 0
		b.setState(breakerClosed)
	}
}

func (b *breaker) current() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *breaker) setState(s int) {
	if b.state != s {
		b.state = s
		b.onChange(s)
	}
}
