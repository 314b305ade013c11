package advisor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ModelState is what the advisor knows about its model server: checked at
// start and every CheckInterval, shown on /readyz and in reasons.
type ModelState struct {
	Checked   time.Time
	Reachable bool
	Version   string
	// Present is true when the server lists the model (/api/tags,
	// /v1/models).
	Present bool
	// Loaded is true when the model is in memory now (/api/ps). Only
	// Ollama tells; KnowsLoaded says whether the answer means anything.
	Loaded      bool
	KnowsLoaded bool
	// OtherLoaded are the models in memory instead of ours: a call will
	// swap them out first, which takes a while.
	OtherLoaded []string
	// Problem is a sentence for a person ("" when all is well), with the
	// fix.
	Problem string
}

// OK reports whether a call can be expected to work.
func (s ModelState) OK() bool { return s.Reachable && s.Present && s.Problem == "" }

// Detail renders the state for /readyz and logs.
func (s ModelState) Detail(backend, model, server string) string {
	if s.Problem != "" {
		return s.Problem
	}
	b := fmt.Sprintf("%s %s at %s: model %s present", backend, s.Version, server, model)
	if s.KnowsLoaded {
		switch {
		case s.Loaded:
			b += ", loaded"
		case len(s.OtherLoaded) > 0:
			b += fmt.Sprintf(", not loaded (%s in memory: the first call swaps models)", strings.Join(s.OtherLoaded, ", "))
		default:
			b += ", not loaded (the first call loads it)"
		}
	}
	return b
}

// loadingNote explains a slow call by the model's state: a load or a swap
// is reported as such, not as a hang.
func (s ModelState) loadingNote(model, server string) string {
	if !s.KnowsLoaded || s.Loaded {
		return ""
	}
	if len(s.OtherLoaded) > 0 {
		return fmt.Sprintf("model %s was being swapped in on %s (replacing %s)", model, server, strings.Join(s.OtherLoaded, ", "))
	}
	return fmt.Sprintf("model %s was being loaded on %s", model, server)
}

// stateBox holds the latest state; the watcher writes, handlers read.
type stateBox struct {
	mu sync.Mutex
	st ModelState
}

func (b *stateBox) get() ModelState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}

// set stores st and reports whether the person-facing summary changed.
func (b *stateBox) set(st ModelState) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := b.st.Checked.IsZero() || b.st.Problem != st.Problem || b.st.Present != st.Present ||
		b.st.Reachable != st.Reachable || b.st.Loaded != st.Loaded || b.st.Version != st.Version
	b.st = st
	return changed
}

// markLoaded records that a call just succeeded, so the model is in memory.
func (b *stateBox) markLoaded() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st.KnowsLoaded {
		b.st.Loaded = true
		b.st.OtherLoaded = nil
	}
	b.st.Reachable, b.st.Present, b.st.Problem = true, true, ""
}

// probe runs one state check bounded by timeout.
func probe(ctx context.Context, b Backend, timeout time.Duration) ModelState {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st := b.Probe(pctx)
	st.Checked = time.Now()
	return st
}
