// Package webhook posts the envelope itself as JSON, for receivers that
// want the whole record (a ticketing bridge, an automation). An optional
// HMAC-SHA256 signature lets the receiver check that the post is ours.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/httpx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
)

// Headers set on every post.
const (
	// HeaderSignature is "sha256=<hex HMAC-SHA256 of the body>" when a
	// secret is configured (the GitHub convention, which most receivers
	// already know how to check).
	HeaderSignature = "X-Smartmon-Signature"
	// HeaderKind is "notify" or "followup".
	HeaderKind = "X-Smartmon-Kind"
	// HeaderIdempotencyKey is "<notification id>:<kind>": receivers can
	// drop the rare repeat after an ambiguous timeout.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Config of one webhook sink.
type Config struct {
	Name string
	URL  config.Secret
	// Secret signs the body; empty means unsigned.
	Secret config.Secret
}

// Sink posts envelopes.
type Sink struct {
	cfg Config
	c   *httpx.Client
	ep  httpx.Endpoint
}

// New builds the sink on the shared HTTP client.
func New(cfg Config, c *httpx.Client) *Sink {
	return &Sink{cfg: cfg, c: c, ep: httpx.Endpoint{Name: cfg.Name, Group: "webhook"}}
}

// Notify posts the envelope; any 2xx is success.
func (s *Sink) Notify(ctx context.Context, r message.Request) (message.Result, error) {
	body, err := r.Env.Encode()
	if err != nil {
		return message.Result{}, fmt.Errorf("webhook %s: %w", s.cfg.Name, err)
	}
	// httpx sets Content-Type: application/json on a body without one.
	h := http.Header{}
	h.Set(HeaderKind, string(r.Kind))
	h.Set(HeaderIdempotencyKey, r.Env.ID+":"+string(r.Kind))
	if s.cfg.Secret.Set() {
		h.Set(HeaderSignature, Sign(s.cfg.Secret, body))
	}
	if _, err := s.c.Do(ctx, s.ep, httpx.Request{Method: http.MethodPost, URL: s.cfg.URL, Header: h, Body: body}); err != nil {
		return message.Result{}, fmt.Errorf("webhook %s: %w", s.cfg.Name, err)
	}
	return message.Result{}, nil
}

// Sign returns the signature header value for body.
func Sign(secret config.Secret, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret.Reveal()))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
