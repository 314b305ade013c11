// Package httpx is the one HTTP client every chat and webhook sink posts
// through. It makes every retry decision in one place, from the status code
// and the platform's rate-limit answers, and expresses it with the retry
// error types so the consume loop turns it into a NakWithDelay, a backoff or
// a dead letter:
//
//   - 2xx (and the statuses a caller says it handles itself) are returned;
//   - 429 waits exactly what the platform asked (Discord's JSON retry_after
//     float, else the Retry-After header); Discord's "global" flag pauses
//     every endpoint of the same group;
//   - 5xx and transport errors are transient (the loop backs off), honouring
//     a Retry-After header when the server sends one;
//   - 401, 403, 404 and 410 mean the webhook is gone or forbidden: it is
//     marked dead (loud log, metric) and never called again until the
//     process restarts, because platforms ban clients that keep hitting
//     dead webhooks; other 4xx are permanent for that one message.
//
// Webhook URLs are secrets (the token is in the path): they never appear in
// an error or a log line written here. net/url errors embed the URL, so they
// are rebuilt without it.
package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
)

// Config tunes the client. The zero value is usable: Defaults fills it.
type Config struct {
	// Timeout bounds one request, connection to last body byte.
	Timeout time.Duration
	// MaxWait is the longest a caller is held in place waiting for its
	// pacing slot or a rate-limit reset. Longer waits return a
	// retry.After error instead, so the message goes back to JetStream
	// (NakWithDelay) rather than pinning a worker.
	MaxWait time.Duration
	// MaxResponseBody bounds how much of an answer is read.
	MaxResponseBody int64
	// MetricsPrefix names the collectors, e.g. "smartmon_notifier_webhook"
	// gives smartmon_notifier_webhook_requests_total.
	MetricsPrefix string
	// Transport replaces http.DefaultTransport (tests, proxies).
	Transport http.RoundTripper
}

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 10 * time.Second
	}
	if c.MaxResponseBody <= 0 {
		c.MaxResponseBody = 64 << 10
	}
	if c.MetricsPrefix == "" {
		c.MetricsPrefix = "smartmon_httpx"
	}
}

// Endpoint is one webhook as the client tracks it: pacing, rate-limit
// blocks and the dead mark are kept per Name.
type Endpoint struct {
	// Name identifies the endpoint in logs, metrics and errors (the sink's
	// configured name, never the URL).
	Name string
	// Group shares platform-wide pauses between endpoints (Discord's
	// global rate limit stops every Discord webhook of this process).
	Group string
	// Pace is the minimum spacing between two requests to this endpoint
	// (Slack about 1/s, Teams 4/s); 0 means only the platform's own
	// headers pace it.
	Pace time.Duration
}

// Request is one call. URL is the full secret URL.
type Request struct {
	Method string
	URL    config.Secret
	Header http.Header
	Body   []byte
	// Pass, when set, picks the non-2xx answers the caller interprets
	// itself; they are returned as a Response without classification.
	// Every other answer is classified as usual: Discord answers 404 both
	// for a deleted message (the caller's to handle) and for a deleted
	// webhook (which must be marked dead like any other 404).
	Pass func(status int, body []byte) bool
}

// Response is a completed call.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrDead is returned, wrapped as permanent, for every call to an endpoint
// that was marked dead.
var ErrDead = errors.New("webhook is dead")

// ErrThrottled is returned, wrapped in retry.After, when the endpoint may not
// be called before a time the platform named (or our pacing) and the wait is
// longer than MaxWait.
var ErrThrottled = errors.New("rate limited")

// StatusError is a non-success answer.
type StatusError struct {
	Endpoint string
	Method   string
	Status   int
	// Body is the start of the answer, scrubbed of the URL.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Endpoint, e.Status)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// TransportError is a failed round trip with the URL taken out of the text.
type TransportError struct {
	Endpoint string
	Method   string
	Msg      string
	err      error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Method, e.Endpoint, e.Msg)
}

// Unwrap exposes the cause for errors.Is (context.DeadlineExceeded); the
// cause is the inner error of url.Error, which does not carry the URL.
func (e *TransportError) Unwrap() error { return e.err }

// Client posts to webhooks. It is safe for concurrent use; build one per
// process (or per stage) and share it between sinks, so the per-endpoint
// state is shared too.
type Client struct {
	cfg Config
	hc  *http.Client
	log *zap.Logger
	now func() time.Time

	mu     sync.Mutex
	hooks  map[string]*hookState
	groups map[string]time.Time

	requests  *prometheus.CounterVec
	throttled *prometheus.CounterVec
	dead      *prometheus.GaugeVec
}

type hookState struct {
	// slot holds one token: one request per webhook at a time, so a
	// rate-limit answer to one request is seen before the next one leaves
	// (platforms count concurrent requests against the same bucket).
	slot         chan struct{}
	next         time.Time // earliest start of the next request (pacing)
	blockedUntil time.Time // the platform said: not before
	dead         string    // reason; "" while alive
}

// New builds a client and registers its metrics on reg (which may be nil).
func New(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Client, error) {
	cfg.Defaults()
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	c := &Client{
		cfg: cfg,
		hc: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A webhook never redirects; following one could send the
			// payload (and the secret path) elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:    log,
		now:    time.Now,
		hooks:  map[string]*hookState{},
		groups: map[string]time.Time{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: cfg.MetricsPrefix + "_requests_total",
			Help: "Requests sent to webhooks, by endpoint and HTTP status (\"error\" for transport failures).",
		}, []string{"endpoint", "code"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: cfg.MetricsPrefix + "_throttled_total",
			Help: "Rate-limit answers (429 or Retry-After) received, by endpoint.",
		}, []string{"endpoint"}),
		dead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: cfg.MetricsPrefix + "_dead",
			Help: "1 when an endpoint answered 401/403/404/410 and is no longer used until restart.",
		}, []string{"endpoint"}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.requests, c.throttled, c.dead} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register httpx metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Dead reports whether the endpoint was marked dead, and why.
func (c *Client) Dead(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.hooks[name]; ok && h.dead != "" {
		return h.dead, true
	}
	return "", false
}

// Do sends one request, waiting for the endpoint's pacing slot when that is
// short, and classifies the answer as described in the package comment.
func (c *Client) Do(ctx context.Context, ep Endpoint, r Request) (*Response, error) {
	c.mu.Lock()
	slot := c.state(ep.Name).slot
	c.mu.Unlock()
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for the request in flight: %w", ep.Name, ctx.Err())
	}
	defer func() { <-slot }()
	if err := c.acquire(ctx, ep); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL.Reveal(), bytes.NewReader(r.Body))
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("%s %s: build request: %s", r.Method, ep.Name, scrub(err.Error(), r.URL)))
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("Content-Type") == "" && len(r.Body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "smart-k8s-monitor")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.requests.WithLabelValues(ep.Name, "error").Inc()
		return nil, transportError(ep, r, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBody))
	c.requests.WithLabelValues(ep.Name, strconv.Itoa(resp.StatusCode)).Inc()
	c.noteRateHeaders(ep, resp.Header)
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if rerr != nil {
			// Delivered, but the answer (a message id) was cut off:
			// retrying would post twice, so report it as permanent.
			return out, retry.Permanent(fmt.Errorf("%s %s: read answer: %s", r.Method, ep.Name, scrub(rerr.Error(), r.URL)))
		}
		return out, nil
	}
	if r.Pass != nil && r.Pass(resp.StatusCode, body) {
		return out, nil
	}
	return out, c.classify(ep, r, resp.StatusCode, resp.Header, body)
}

// acquire waits for the endpoint's next slot, or says how long to wait.
// It re-checks after every wait: a rate-limit answer to another request may
// have arrived meanwhile, and no request may leave before the time a
// platform named.
func (c *Client) acquire(ctx context.Context, ep Endpoint) error {
	for {
		c.mu.Lock()
		h := c.state(ep.Name)
		if h.dead != "" {
			reason := h.dead
			c.mu.Unlock()
			return retry.Permanent(fmt.Errorf("%s: %w (%s); fix its URL and restart", ep.Name, ErrDead, reason))
		}
		now := c.now()
		start := now
		for _, t := range []time.Time{h.next, h.blockedUntil, c.groups[ep.Group]} {
			if t.After(start) {
				start = t
			}
		}
		wait := start.Sub(now)
		if wait > c.cfg.MaxWait {
			c.mu.Unlock()
			return retry.After(wait, fmt.Errorf("%s: %w for %s", ep.Name, ErrThrottled, wait.Round(time.Millisecond)))
		}
		if wait <= 0 {
			h.next = now.Add(ep.Pace)
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: waiting for rate limit: %w", ep.Name, ctx.Err())
		}
	}
}

func (c *Client) state(name string) *hookState {
	h, ok := c.hooks[name]
	if !ok {
		h = &hookState{slot: make(chan struct{}, 1)}
		c.hooks[name] = h
	}
	return h
}

// noteRateHeaders paces by Discord's X-RateLimit-* headers: when a bucket
// is used up, the next request waits for its reset instead of earning a 429.
func (c *Client) noteRateHeaders(ep Endpoint, h http.Header) {
	rem := h.Get("X-RateLimit-Remaining")
	reset := h.Get("X-RateLimit-Reset-After")
	if rem != "0" || reset == "" {
		return
	}
	d, ok := parseSeconds(reset)
	if !ok {
		return
	}
	c.block(ep, d, false)
}

func (c *Client) block(ep Endpoint, d time.Duration, global bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	until := c.now().Add(d)
	if global {
		if until.After(c.groups[ep.Group]) {
			c.groups[ep.Group] = until
		}
		return
	}
	h := c.state(ep.Name)
	if until.After(h.blockedUntil) {
		h.blockedUntil = until
	}
}

// discordRateLimit is Discord's 429 body.
type discordRateLimit struct {
	RetryAfter *float64 `json:"retry_after"`
	Global     bool     `json:"global"`
}

func (c *Client) classify(ep Endpoint, r Request, status int, h http.Header, body []byte) error {
	serr := &StatusError{Endpoint: ep.Name, Method: r.Method, Status: status, Body: snippet(body, r.URL)}
	switch {
	case status == http.StatusTooManyRequests:
		c.throttled.WithLabelValues(ep.Name).Inc()
		d, global := retryAfter(h, body)
		if d <= 0 {
			// A 429 that names no time: be conservative.
			d = time.Second
		}
		c.block(ep, d, global)
		if global {
			c.log.Warn("platform-wide rate limit: pausing every endpoint of the group",
				zap.String("endpoint", ep.Name), zap.String("group", ep.Group), zap.Duration("for", d))
		}
		return retry.After(d, serr)
	case status >= 500:
		if d, ok := headerRetryAfter(h); ok && d > 0 {
			c.throttled.WithLabelValues(ep.Name).Inc()
			c.block(ep, d, false)
			return retry.After(d, serr)
		}
		return serr
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusNotFound, status == http.StatusGone:
		c.markDead(ep, serr.Error())
		return retry.Permanent(fmt.Errorf("%w: %w", ErrDead, serr))
	default:
		// 400 and friends: this message is wrong, the webhook is fine.
		return retry.Permanent(serr)
	}
}

func (c *Client) markDead(ep Endpoint, reason string) {
	c.mu.Lock()
	h := c.state(ep.Name)
	first := h.dead == ""
	if first {
		h.dead = reason
	}
	c.mu.Unlock()
	if first {
		c.dead.WithLabelValues(ep.Name).Set(1)
		c.log.Error("webhook is dead: not using it again until restart",
			zap.String("endpoint", ep.Name), zap.String("reason", reason),
			zap.String("fix", "check that the webhook still exists and its URL is right, then restart"))
	}
}

// retryAfter reads the delay of a 429: Discord's precise JSON retry_after
// (seconds, float) first, then the Retry-After header.
func retryAfter(h http.Header, body []byte) (time.Duration, bool) {
	var rl discordRateLimit
	global := strings.EqualFold(h.Get("X-RateLimit-Global"), "true") || strings.EqualFold(h.Get("X-RateLimit-Scope"), "global")
	if json.Unmarshal(body, &rl) == nil {
		global = global || rl.Global
		if rl.RetryAfter != nil && *rl.RetryAfter >= 0 && !math.IsInf(*rl.RetryAfter, 0) && !math.IsNaN(*rl.RetryAfter) {
			return floatSeconds(*rl.RetryAfter), global
		}
	}
	d, _ := headerRetryAfter(h)
	return d, global
}

// headerRetryAfter parses Retry-After: delta-seconds (decimals tolerated) or
// an HTTP date.
func headerRetryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if d, ok := parseSeconds(v); ok {
		return d, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t), true
	}
	return 0, false
}

// maxRetryAfter caps what a platform can make us wait, against a broken
// header meaning "forever".
const maxRetryAfter = time.Hour

func parseSeconds(v string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return floatSeconds(f), true
}

func floatSeconds(f float64) time.Duration {
	d := time.Duration(f * float64(time.Second))
	if d > maxRetryAfter {
		d = maxRetryAfter
	}
	return d
}

// maxSnippet is how much of an error body is kept in an error message.
const maxSnippet = 200

func snippet(body []byte, secret config.Secret) string {
	s := strings.TrimSpace(string(body))
	if r := []rune(s); len(r) > maxSnippet {
		s = string(r[:maxSnippet]) + "…"
	}
	return scrub(s, secret)
}

func transportError(ep Endpoint, r Request, err error) error {
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	return &TransportError{Endpoint: ep.Name, Method: r.Method, Msg: scrub(inner.Error(), r.URL), err: inner}
}

// Scrub removes every form of the secret URL (whole, path, query, and
// percent-encoded) from a text. It is exported for the sinks, which build
// their own errors around responses.
func Scrub(s string, secret config.Secret) string { return scrub(s, secret) }

func scrub(s string, secret config.Secret) string {
	raw := secret.Reveal()
	if raw == "" {
		return s
	}
	const mask = "[webhook URL]"
	cands := []string{raw, url.QueryEscape(raw), url.PathEscape(raw)}
	if u, err := url.Parse(raw); err == nil {
		if u.Path != "" && u.Path != "/" {
			cands = append(cands, u.Path, u.EscapedPath())
		}
		if u.RawQuery != "" {
			cands = append(cands, u.RawQuery)
		}
		if u.User != nil {
			cands = append(cands, u.User.String())
		}
	}
	for _, c := range cands {
		if c != "" {
			s = strings.ReplaceAll(s, c, mask)
		}
	}
	return s
}
