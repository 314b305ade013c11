package envelope

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is the envelope schema version. Bump it on an incompatible change;
// consumers reject envelopes from the future instead of misreading them.
const Version = 1

// Stage names, used in subjects, consumer names, traces and dead letters.
const (
	StageIngest   = "ingest"
	StageEnricher = "enricher"
	StageAdvisor  = "advisor"
	StageNotifier = "notifier"
)

// Envelope is one Alertmanager group notification on its way through the
// pipeline. Each stage adds its own section and appends a StageRecord; a
// stage never rewrites another stage's section.
type Envelope struct {
	V            int       `json:"v"`
	ID           string    `json:"id"`
	ReceivedAt   time.Time `json:"receivedAt"`
	Notification Webhook   `json:"notification"`

	Enrichment *Enrichment `json:"enrichment,omitempty"`
	Advice     *Advice     `json:"advice,omitempty"`

	Stages []StageRecord `json:"stages"`
}

// StageRecord is what one stage did with the envelope: when, how long, on
// which delivery attempt, and the errors it met (errors are data: a stage
// that could not do all of its work still passes the alert on).
type StageRecord struct {
	Stage    string        `json:"stage"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"durationNs"`
	Attempt  int           `json:"attempt,omitempty"`
	Errors   []string      `json:"errors,omitempty"`
	Note     string        `json:"note,omitempty"`
}

// New builds the envelope for a freshly received notification.
func New(w Webhook, receivedAt time.Time) (*Envelope, error) {
	id, err := w.NotificationID()
	if err != nil {
		return nil, err
	}
	return &Envelope{V: Version, ID: id, ReceivedAt: receivedAt.UTC(), Notification: w}, nil
}

// Decode parses an envelope and refuses versions it does not know.
func Decode(data []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	if e.V < 1 || e.V > Version {
		return nil, fmt.Errorf("decode envelope: version %d is not supported (this build knows 1..%d)", e.V, Version)
	}
	if e.ID == "" {
		return nil, fmt.Errorf("decode envelope: id is empty")
	}
	return &e, nil
}

// Encode serialises the envelope.
func (e *Envelope) Encode() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", e.ID, err)
	}
	return b, nil
}

// Record appends a stage record.
func (e *Envelope) Record(r StageRecord) { e.Stages = append(e.Stages, r) }

// Firing reports whether any alert of the notification is firing.
func (e *Envelope) Firing() bool { return e.Notification.Status == StatusFiring }

// Label returns a label of the notification: the common label if all alerts
// share it, else the first alert's.
func (e *Envelope) Label(name string) string {
	if v, ok := e.Notification.CommonLabels[name]; ok {
		return v
	}
	for _, a := range e.Notification.Alerts {
		if v, ok := a.Labels[name]; ok {
			return v
		}
	}
	return ""
}

// Annotation returns an annotation the same way Label does.
func (e *Envelope) Annotation(name string) string {
	if v, ok := e.Notification.CommonAnnotations[name]; ok {
		return v
	}
	for _, a := range e.Notification.Alerts {
		if v, ok := a.Annotations[name]; ok {
			return v
		}
	}
	return ""
}

// AlertName is the notification's alertname label.
func (e *Envelope) AlertName() string { return e.Label("alertname") }

// Severity is the notification's severity label, "" if none.
func (e *Envelope) Severity() string { return e.Label("severity") }
