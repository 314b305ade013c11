package advisor

import (
	"container/heap"
	"context"
	"sync"
)

// slots bounds concurrent model calls and hands a freed slot to the most
// urgent waiter (critical before warning, then first come). A waiter gives
// up when its context ends: waiting for the model never holds an alert past
// its deadline.
type slots struct {
	mu      sync.Mutex
	cap     int
	used    int
	seq     uint64
	waiters waitHeap
}

type waiter struct {
	prio    int
	seq     uint64
	ready   chan struct{}
	granted bool
	index   int
}

func newSlots(n int) *slots { return &slots{cap: n} }

// acquire waits for a slot; the returned func releases it.
func (s *slots) acquire(ctx context.Context, prio int) (func(), error) {
	s.mu.Lock()
	if s.used < s.cap && s.waiters.Len() == 0 {
		s.used++
		s.mu.Unlock()
		return s.releaseOnce(), nil
	}
	s.seq++
	w := &waiter{prio: prio, seq: s.seq, ready: make(chan struct{})}
	heap.Push(&s.waiters, w)
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
			heap.Remove(&s.waiters, w.index)
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
	if s.waiters.Len() > 0 {
		w := heap.Pop(&s.waiters).(*waiter) //nolint:forcetypeassert // the heap holds only waiters
		w.granted = true
		close(w.ready)
		return // the slot moves to w; used stays the same
	}
	s.used--
}

// waiting is the number of calls queued for a slot.
func (s *slots) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters.Len()
}

type waitHeap []*waiter

func (h waitHeap) Len() int { return len(h) }
func (h waitHeap) Less(i, j int) bool {
	if h[i].prio != h[j].prio {
		return h[i].prio < h[j].prio
	}
	return h[i].seq < h[j].seq
}
func (h waitHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *waitHeap) Push(x any) {
	w := x.(*waiter) //nolint:forcetypeassert // only waiters are pushed
	w.index = len(*h)
	*h = append(*h, w)
}

func (h *waitHeap) Pop() any {
	old := *h
	n := len(old)
	w := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return w
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
