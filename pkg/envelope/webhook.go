// Package envelope defines the message that travels between the pipeline's
// stages: one Alertmanager group notification, plus the sections each stage
// adds. It is versioned (field "v") and JSON on the wire.
package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// WebhookVersion is the only Alertmanager webhook payload version we accept.
// Alertmanager has sent "4" since v0.8; a different value means a different
// contract, so it is rejected rather than guessed at.
const WebhookVersion = "4"

// Alert statuses as Alertmanager sends them.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Webhook is Alertmanager's webhook body (version 4). Unknown fields are
// ignored on decode so newer Alertmanagers keep working; the fields added in
// v0.32 and v0.34 are kept because operators want to see them.
type Webhook struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
	// NotificationReason is sent by Alertmanager v0.32 and later.
	NotificationReason string `json:"notification_reason,omitempty"`
	// RouteLabels is sent by Alertmanager v0.34 and later.
	RouteLabels map[string]string `json:"routeLabels,omitempty"`
}

// Alert is one alert inside a group notification.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Firing reports whether the alert is firing.
func (a Alert) Firing() bool { return a.Status == StatusFiring }

// HasEnd reports whether EndsAt is a real time. Alertmanager sends
// 0001-01-01T00:00:00Z for a firing alert: "no end", not year one.
func (a Alert) HasEnd() bool { return !a.EndsAt.IsZero() && a.EndsAt.Year() > 1 }

// ValidationError says what is wrong with a webhook body. Ingest answers it
// with 422 and the message as is, so it must be readable by a person who is
// editing an Alertmanager config.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid Alertmanager webhook: " + strings.Join(e.Problems, "; ")
}

// maxProblems caps how many problems one error lists, so a 10,000-alert body
// with the same mistake does not produce a megabyte of error text.
const maxProblems = 10

// Validate checks the parts of the body the pipeline relies on. It does not
// reject unknown or extra data.
func (w *Webhook) Validate() error {
	var p []string
	add := func(format string, args ...any) {
		if len(p) < maxProblems {
			p = append(p, fmt.Sprintf(format, args...))
		}
	}
	if w.Version != WebhookVersion {
		add("version is %q, want %q (Alertmanager webhook payload v4)", w.Version, WebhookVersion)
	}
	if w.GroupKey == "" {
		add("groupKey is missing")
	}
	if w.Status != StatusFiring && w.Status != StatusResolved {
		add("status is %q, want %q or %q", w.Status, StatusFiring, StatusResolved)
	}
	if len(w.Alerts) == 0 {
		add("alerts is empty: a notification carries at least one alert")
	}
	if w.TruncatedAlerts < 0 {
		add("truncatedAlerts is negative (%d)", w.TruncatedAlerts)
	}
	for i, a := range w.Alerts {
		if a.Status != StatusFiring && a.Status != StatusResolved {
			add("alerts[%d].status is %q, want %q or %q", i, a.Status, StatusFiring, StatusResolved)
		}
		if a.Fingerprint == "" {
			add("alerts[%d].fingerprint is missing", i)
		}
		if a.StartsAt.IsZero() {
			add("alerts[%d].startsAt is missing", i)
		}
		if len(a.Labels) == 0 {
			add("alerts[%d].labels is empty", i)
		}
	}
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// ErrNoAlerts is returned by NotificationID for a body without alerts.
var ErrNoAlerts = errors.New("notification has no alerts")

// NotificationID identifies a notification for deduplication: a hash of the
// group key and the sorted (fingerprint, status, startsAt) of its alerts.
// Both members of an Alertmanager HA pair, and Alertmanager's own retries,
// produce the same id, so JetStream drops the copies (Nats-Msg-Id), also
// after a restart, because the stream keeps the messages the duplicate table
// is rebuilt from.
func (w *Webhook) NotificationID() (string, error) {
	if len(w.Alerts) == 0 {
		return "", ErrNoAlerts
	}
	keys := make([]string, len(w.Alerts))
	for i, a := range w.Alerts {
		keys[i] = a.Fingerprint + "\x1f" + a.Status + "\x1f" + a.StartsAt.UTC().Format(time.RFC3339Nano)
	}
	sort.Strings(keys)
	h := sha256.New()
	h.Write([]byte(w.GroupKey))
	for _, k := range keys {
		h.Write([]byte{0x1e})
		h.Write([]byte(k))
	}
	// 128 bits are plenty against accidental collisions and keep subjects,
	// KV keys and log lines short.
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}
