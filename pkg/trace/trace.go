// Package trace records each stage's step for each notification in a KV
// bucket, so an operator can ask "where is this alert?" with
// `smartmon trace <id|fingerprint>` or GET /api/v1/alerts/{id}.
package trace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
)

// TTL of trace entries: as long as the alerts themselves are kept.
const TTL = 7 * 24 * time.Hour

// maxSteps bounds one notification's timeline; a message retried for days
// must not grow its trace without end.
const maxSteps = 200

// Step is one thing that happened to a notification.
type Step struct {
	Stage   string    `json:"stage"`
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
}

// Timeline is a notification's trace.
type Timeline struct {
	ID           string   `json:"id"`
	GroupKey     string   `json:"groupKey,omitempty"`
	AlertName    string   `json:"alertname,omitempty"`
	Fingerprints []string `json:"fingerprints,omitempty"`
	Steps        []Step   `json:"steps"`
}

// Recorder writes traces. A failure to trace is logged, never returned to the
// pipeline: the trace is for people, the alert must not wait on it.
type Recorder struct {
	kv  jetstream.KeyValue
	log *zap.Logger
}

// Open creates or opens the TRACE bucket.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, log *zap.Logger) (*Recorder, error) {
	kv, err := jsx.KeyValue(ctx, js, jsx.BucketTrace, TTL, replicas)
	if err != nil {
		return nil, err
	}
	return &Recorder{kv: kv, log: log}, nil
}

// OpenExisting opens the TRACE bucket for reading (the CLI's `trace`)
// without creating or changing it: Open would reset a clustered bucket's
// replicas to whatever the reader passed. A missing bucket is ErrNotFound.
func OpenExisting(ctx context.Context, js jetstream.JetStream, log *zap.Logger) (*Recorder, error) {
	kv, err := js.KeyValue(ctx, jsx.BucketTrace)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", jsx.BucketTrace, err)
	}
	return &Recorder{kv: kv, log: log}, nil
}

func idKey(id string) string { return "n." + id }
func fpKey(fp string) string { return "fp." + sanitize(fp) }

// sanitize keeps KV-legal characters; fingerprints are hex, but this is
// untrusted input.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// Received records a new notification and indexes it by its alerts'
// fingerprints.
func (r *Recorder) Received(ctx context.Context, env *envelope.Envelope, outcome, detail string) {
	var fps []string
	for _, a := range env.Notification.Alerts {
		fps = append(fps, a.Fingerprint)
	}
	r.update(ctx, env.ID, func(t *Timeline) {
		t.GroupKey = env.Notification.GroupKey
		t.AlertName = env.AlertName()
		t.Fingerprints = fps
		// At is the receipt, not this write: ingest records it beside its
		// answer, so a later stage may have written first.
		t.Steps = append(t.Steps, Step{Stage: envelope.StageIngest, At: env.ReceivedAt.UTC(), Outcome: outcome, Detail: detail})
	})
	for _, fp := range fps {
		if err := r.addToIndex(ctx, fpKey(fp), env.ID); err != nil {
			r.log.Debug("trace index", zap.Error(err))
		}
	}
}

// Record appends a step to a notification's timeline.
func (r *Recorder) Record(ctx context.Context, id string, s Step) {
	if s.At.IsZero() {
		s.At = time.Now().UTC()
	}
	r.update(ctx, id, func(t *Timeline) { t.Steps = append(t.Steps, s) })
}

// Handled implements jsx.Observer: every delivery outcome of every stage.
func (r *Recorder) Handled(stage string, d *jsx.Delivery, o jsx.Outcome, _ time.Duration, err error) {
	if d.Envelope == nil {
		return
	}
	detail := d.Detail
	if err != nil {
		detail = err.Error()
	} else if detail != "" {
		// the handler said it
	} else if n := len(d.Envelope.Stages); n > 0 && d.Envelope.Stages[n-1].Stage == stage {
		last := d.Envelope.Stages[n-1]
		detail = last.Note
		if len(last.Errors) > 0 {
			detail = strings.TrimSpace(detail + " errors: " + strings.Join(last.Errors, "; "))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.Record(ctx, d.Envelope.ID, Step{Stage: stage, Outcome: string(o), Detail: detail, Attempt: d.Attempt})
}

func (r *Recorder) update(ctx context.Context, id string, f func(*Timeline)) {
	err := modify(ctx, r.kv, idKey(sanitize(id)), func(t *Timeline) bool {
		t.ID = id
		f(t)
		if len(t.Steps) > maxSteps {
			t.Steps = append(t.Steps[:1], t.Steps[len(t.Steps)-maxSteps+1:]...)
		}
		return true
	})
	if err != nil {
		r.log.Warn("trace step dropped", zap.String("alert_id", id), zap.Error(err))
	}
}

func (r *Recorder) addToIndex(ctx context.Context, key, id string) error {
	return modify(ctx, r.kv, key, func(ids *[]string) bool {
		if slices.Contains(*ids, id) {
			return false
		}
		*ids = append(*ids, id)
		if len(*ids) > 50 {
			*ids = (*ids)[len(*ids)-50:]
		}
		return true
	})
}

// modify is a read-modify-write of one JSON value with optimistic
// concurrency (stages write at once): it reads key (a missing or damaged
// value starts from zero), lets f change it, and writes it back only if no
// one else wrote in between, else tries again. f returns false to leave
// the value as it is.
func modify[T any](ctx context.Context, kv jetstream.KeyValue, key string, f func(*T) bool) error {
	for range 10 {
		var v T
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				var zero T
				v = zero
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return fmt.Errorf("read %s: %w", key, err)
		}
		if !f(&v) {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, b)
		} else {
			_, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSeq(err) {
			return fmt.Errorf("write %s: %w", key, err)
		}
	}
	return fmt.Errorf("write %s: contended", key)
}

func isWrongSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// ErrNotFound is returned by Lookup for an unknown id or fingerprint.
var ErrNotFound = errors.New("no trace for that notification id or fingerprint")

// Lookup returns the timelines for a notification id, or for every
// notification that carried an alert with that fingerprint, newest last.
func (r *Recorder) Lookup(ctx context.Context, idOrFingerprint string) ([]Timeline, error) {
	if t, err := r.get(ctx, idOrFingerprint); err == nil {
		return []Timeline{t}, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	e, err := r.kv.Get(ctx, fpKey(idOrFingerprint))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read trace index: %w", err)
	}
	var ids []string
	_ = json.Unmarshal(e.Value(), &ids)
	var out []Timeline
	for _, id := range ids {
		if t, err := r.get(ctx, id); err == nil {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	sort.SliceStable(out, func(i, j int) bool { return first(out[i]).Before(first(out[j])) })
	return out, nil
}

func first(t Timeline) time.Time {
	if len(t.Steps) == 0 {
		return time.Time{}
	}
	return t.Steps[0].At
}

func (r *Recorder) get(ctx context.Context, id string) (Timeline, error) {
	e, err := r.kv.Get(ctx, idKey(sanitize(id)))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Timeline{}, ErrNotFound
	}
	if err != nil {
		return Timeline{}, fmt.Errorf("read trace: %w", err)
	}
	var t Timeline
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return Timeline{}, fmt.Errorf("decode trace %s: %w", id, err)
	}
	// Stages write concurrently; the timeline reads in the order things
	// happened, not the order they were written.
	sort.SliceStable(t.Steps, func(i, j int) bool { return t.Steps[i].At.Before(t.Steps[j].At) })
	return t, nil
}

// Format renders a timeline for a terminal.
func Format(t Timeline) string {
	var b strings.Builder
	fmt.Fprintf(&b, "notification %s", t.ID)
	if t.AlertName != "" {
		fmt.Fprintf(&b, " (%s)", t.AlertName)
	}
	b.WriteString("\n")
	if len(t.Fingerprints) > 0 {
		fmt.Fprintf(&b, "  alerts: %s\n", strings.Join(t.Fingerprints, ", "))
	}
	var start time.Time
	for i, s := range t.Steps {
		if i == 0 {
			start = s.At
		}
		fmt.Fprintf(&b, "  %s  +%-8s %-9s %-12s", s.At.Format(time.RFC3339), s.At.Sub(start).Round(time.Millisecond), s.Stage, s.Outcome)
		if s.Attempt > 1 {
			fmt.Fprintf(&b, " attempt %d", s.Attempt)
		}
		if s.Detail != "" {
			fmt.Fprintf(&b, "  %s", s.Detail)
		}
		b.WriteString("\n")
	}
	return b.String()
}
