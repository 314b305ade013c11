// Package retry holds the error types that carry a retry decision across a
// boundary, and the backoff that turns an attempt number into a delay. Code
// that meets an error classifies it once, where it knows what went wrong
// (an HTTP status, a Kubernetes reason), and everything downstream reads the
// decision with errors.As instead of matching strings.
package retry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// PermanentError marks an error that will not go away by trying again
// (a 404 webhook, a malformed message). The consume loop dead-letters it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as permanent; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err (or anything it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// ThrottledError marks a transient error for which the other side said how
// long to wait (HTTP Retry-After, Discord retry_after).
type ThrottledError struct {
	Err   error
	After time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}
func (e *ThrottledError) Unwrap() error { return e.Err }

// After wraps err with the delay the other side asked for.
func After(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &ThrottledError{Err: err, After: d}
}

// RetryAfter returns the delay carried by err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var t *ThrottledError
	if errors.As(err, &t) {
		return t.After, true
	}
	var w *WaitError
	if errors.As(err, &w) {
		return w.After, true
	}
	return 0, false
}

// WaitError is not a failure: the work is not due yet (an alert whose
// advice may still come). The consume loop puts the message back for
// exactly After, quietly.
type WaitError struct {
	Reason string
	After  time.Duration
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("%s (due in %s)", e.Reason, e.After.Round(time.Millisecond))
}

// Wait returns a WaitError.
func Wait(d time.Duration, reason string) error { return &WaitError{Reason: reason, After: d} }

// IsWait reports whether err is a WaitError.
func IsWait(err error) bool {
	var w *WaitError
	return errors.As(err, &w)
}

// Backoff is capped exponential backoff with full jitter on the upper half,
// so a crowd of retries spreads out instead of arriving together.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// Factor multiplies the delay per attempt; 2 if zero.
	Factor float64
	// NoJitter makes delays exact; for tests and for documentation tables.
	NoJitter bool
}

// DefaultBackoff suits network calls: 500ms, 1s, 2s, ... up to 30s.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second}
}

// Delay returns the delay before retry number attempt (1 = first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	f := b.Factor
	if f <= 1 {
		f = 2
	}
	d := float64(b.Initial)
	for i := 1; i < attempt && d < float64(b.Max); i++ {
		d *= f
	}
	if b.Max > 0 && d > float64(b.Max) {
		d = float64(b.Max)
	}
	if !b.NoJitter && d > 1 {
		half := d / 2
		d = half + rand.Float64()*half //nolint:gosec // jitter needs no cryptographic randomness
	}
	return time.Duration(d)
}

// Decide returns the delay before the next attempt of an operation that
// failed with err on the given attempt, and false if it must not be retried.
func (b Backoff) Decide(err error, attempt int) (time.Duration, bool) {
	if err == nil || IsPermanent(err) {
		return 0, false
	}
	if d, ok := RetryAfter(err); ok {
		return d, true
	}
	return b.Delay(attempt), true
}
