package notifier

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Claim states.
const (
	claimPending = "pending"
	claimDone    = "done"
	claimFailed  = "failed"
)

// claim is the record of one (notification, sink) delivery in the CLAIMS
// bucket. "pending" while a worker posts, "done" once the platform took it
// (with the message id, to edit it later), "failed" when the platform
// refused it for good (the same message is not retried; a replay is).
type claim struct {
	State     string    `json:"state"`
	At        time.Time `json:"at"`
	MessageID string    `json:"messageId,omitempty"`
	// Advice records whether the posted message carried advice, so that
	// advice arriving later becomes a follow-up.
	Advice bool   `json:"advice,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Seq is the stream sequence of the message that failed.
	Seq uint64 `json:"seq,omitempty"`
	// Owner is the notifier process that holds a pending claim; its
	// heartbeat tells the others whether it is still alive.
	Owner string `json:"owner,omitempty"`
}

// heartbeat is the value of an owner's key. The time is for people
// reading the bucket; others judge a holder by whether the key's revision
// moves (see holderGone).
type heartbeat struct {
	At time.Time `json:"at"`
}

// group is the living message of an incident (a groupKey) on a sink that
// can edit (Discord).
type group struct {
	MessageID string    `json:"messageId"`
	Resolved  bool      `json:"resolved,omitempty"`
	At        time.Time `json:"at"`
}

func notifyKey(id, sink string) string   { return "n." + id + "." + sink }
func ownerKey(owner string) string       { return "o." + owner }
func followupKey(id, sink string) string { return "f." + id + "." + sink }
func groupKeyFor(groupKey, sink string) string {
	h := sha256.Sum256([]byte(groupKey))
	return "g." + hex.EncodeToString(h[:16]) + "." + sink
}

// claims wraps the KV bucket.
//
// A pending claim is normally left to its holder until the lease runs out
// (the longest a post can take). When the holder is another process whose
// heartbeat has stopped (it was killed), the claim is taken over once the
// heartbeat has stood still for c.stale instead: after a crash, the one
// post per sink that was in flight waits seconds, not the whole lease.
type claims struct {
	kv    jetstream.KeyValue
	lease time.Duration
	now   func() time.Time
	log   *zap.Logger
	owner string        // this process, written into the claims it takes
	every time.Duration // heartbeat interval
	stale time.Duration // a heartbeat older than this belongs to a dead process
	// takeovers counts claims taken from a holder that stopped.
	takeovers prometheus.Counter

	// beats remembers, per holder, the last heartbeat revision seen and
	// when (by this process's clock). A holder is judged by whether its
	// heartbeat moves, not by the time written in it: clocks of
	// different machines may disagree by more than the stale limit.
	mu    sync.Mutex
	beats map[string]seenBeat
}

type seenBeat struct {
	rev uint64
	at  time.Time
}

func newClaims(kv jetstream.KeyValue, lease time.Duration, now func() time.Time, log *zap.Logger, takeovers prometheus.Counter) (*claims, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("owner id: %w", err)
	}
	// Stale after a fifth of the lease, at most 10 s; beats five times
	// within that, so a few lost writes or a slow NATS leader election do
	// not make a live process look dead.
	stale := min(lease/5, 10*time.Second)
	return &claims{
		kv: kv, lease: lease, now: now, log: log, owner: hex.EncodeToString(b[:]),
		every: stale / 5, stale: stale, takeovers: takeovers, beats: map[string]seenBeat{},
	}, nil
}

// beat writes this process's heartbeat at once, then every c.every until
// ctx ends, and removes it then (its claims were released or finished).
// The first write is synchronous so that no claim of ours exists without a
// heartbeat.
func (c *claims) beat(ctx context.Context) (wait func(), err error) {
	put := func(ctx context.Context) error {
		b, err := json.Marshal(heartbeat{At: c.now().UTC()})
		if err != nil {
			return err
		}
		_, err = c.kv.Put(ctx, ownerKey(c.owner), b)
		return err
	}
	if err := put(ctx); err != nil {
		return nil, fmt.Errorf("write heartbeat: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(c.every)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-ctx.Done():
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				_ = c.kv.Delete(dctx, ownerKey(c.owner))
				cancel()
				return
			case <-t.C:
				if err := put(ctx); err != nil && ctx.Err() == nil {
					if !failing {
						c.log.Warn("cannot write the notifier heartbeat; other notifiers may take over its posts in flight", zap.Error(err))
					}
					failing = true
				} else {
					failing = false
				}
			}
		}
	}()
	return func() { <-done }, nil
}

// holderGone reports whether the process that owns a pending claim has
// stopped: its heartbeat is missing, or has not moved for c.stale as this
// process saw it. The first look at a holder only starts the clock, so
// after a restart a crashed holder's post waits c.stale. Any doubt (a read
// error) says no, and the lease decides. It also returns how long the
// heartbeat has stood still, for the log.
func (c *claims) holderGone(ctx context.Context, owner string) (time.Duration, bool) {
	if owner == "" || owner == c.owner {
		return 0, false
	}
	e, err := c.kv.Get(ctx, ownerKey(owner))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, true
	}
	if err != nil {
		return 0, false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	seen, ok := c.beats[owner]
	if !ok || seen.rev != e.Revision() {
		if len(c.beats) > 1000 {
			clear(c.beats) // holders come and go with restarts; forget old ones
		}
		c.beats[owner] = seenBeat{rev: e.Revision(), at: now}
		return 0, false
	}
	still := now.Sub(seen.at)
	return still, still > c.stale
}

// errBusy means another worker holds the claim right now.
var errBusy = errors.New("another delivery of this notification is in progress")

// outcome of taking a claim.
type taken struct {
	proceed bool   // we hold it: post
	rev     uint64 // revision of our pending record
	prior   *claim // the record found (done or failed), when not proceeding
	wait    time.Duration
}

func (c *claims) get(ctx context.Context, key string) (*claim, uint64, error) {
	return read[claim](ctx, c.kv, "claim", key)
}

// read decodes the JSON record at key. A missing key gives (nil, 0); a
// record that does not decode is treated as absent, (nil, rev), so that
// posting again wins over never posting, and an update still replaces it.
func read[T any](ctx context.Context, kv jetstream.KeyValue, what, key string) (*T, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read %s %s: %w", what, key, err)
	}
	var v T
	if json.Unmarshal(e.Value(), &v) != nil {
		return nil, e.Revision(), nil
	}
	return &v, e.Revision(), nil
}

// take tries to own key for the delivery of message seq.
func (c *claims) take(ctx context.Context, key string, seq uint64) (taken, error) {
	pending, err := json.Marshal(claim{State: claimPending, At: c.now().UTC(), Owner: c.owner})
	if err != nil {
		return taken{}, fmt.Errorf("encode claim: %w", err)
	}
	for range 5 {
		cl, rev, err := c.get(ctx, key)
		if err != nil {
			return taken{}, err
		}
		if cl == nil && rev == 0 {
			r, err := c.kv.Create(ctx, key, pending)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return taken{}, fmt.Errorf("create claim %s: %w", key, err)
			}
			return taken{proceed: true, rev: r}, nil
		}
		if cl != nil {
			switch {
			case cl.State == claimDone:
				return taken{prior: cl}, nil
			case cl.State == claimFailed && cl.Seq == seq:
				return taken{prior: cl}, nil
			case cl.State == claimPending:
				if age := c.now().Sub(cl.At); age < c.lease {
					still, gone := c.holderGone(ctx, cl.Owner)
					if !gone {
						return taken{wait: min(c.lease-age, c.every, 5*time.Second)}, nil
					}
					c.log.Info("taking over a post in flight of a notifier that stopped",
						zap.String("key", key), zap.String("holder", cl.Owner), zap.Duration("heartbeat_still_for", still.Round(time.Millisecond)))
				}
				// The holder crashed mid-delivery: take over. This is
				// the one case that can post twice (the crash may have
				// come after the platform took the message).
			}
		}
		r, err := c.kv.Update(ctx, key, pending, rev)
		if err != nil {
			continue // someone else moved first: look again
		}
		if cl != nil && cl.State == claimPending {
			c.takeovers.Inc()
		}
		return taken{proceed: true, rev: r}, nil
	}
	return taken{wait: 200 * time.Millisecond}, nil
}

func (c *claims) put(ctx context.Context, key string, cl claim) error {
	cl.At = c.now().UTC()
	b, err := json.Marshal(cl)
	if err != nil {
		return fmt.Errorf("encode claim: %w", err)
	}
	var last error
	for range 3 {
		if _, err := c.kv.Put(ctx, key, b); err != nil {
			last = err
			continue
		}
		return nil
	}
	return fmt.Errorf("write claim %s: %w", key, last)
}

// release drops our pending claim after a transient failure, so the retry
// can take it at once. It runs even when ctx is done (a shutdown cut the
// post short): otherwise the restarted notifier would wait out the lease.
func (c *claims) release(ctx context.Context, key string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = c.kv.Delete(ctx, key, jetstream.LastRevision(rev))
}

func (c *claims) group(ctx context.Context, key string) (*group, error) {
	g, _, err := read[group](ctx, c.kv, "group", key)
	return g, err
}

func (c *claims) putGroup(ctx context.Context, key string, g group) error {
	g.At = c.now().UTC()
	b, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode group: %w", err)
	}
	if _, err := c.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write group %s: %w", key, err)
	}
	return nil
}
