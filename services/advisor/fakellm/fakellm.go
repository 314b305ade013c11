// Package fakellm runs fake model servers for tests: one speaking Ollama's
// native API (/api/chat, /api/tags, /api/ps, /api/version) and one speaking
// the OpenAI-compatible chat-completions API (/v1/chat/completions,
// /v1/models). They answer the way the real servers do, including the ways
// they fail: slow, hanging, busy (503), missing model (404), non-JSON
// answers, a 200 stream that ends in an error line, and answers cut off at
// the token limit.
package fakellm

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mode is how the server answers the next chat calls.
type Mode string

// Modes.
const (
	// Normal answers a valid JSON advice after Latency.
	Normal Mode = "normal"
	// Slow answers like Normal, but after SlowDelay.
	Slow Mode = "slow"
	// Hang never answers; the request ends only when the client gives up.
	Hang Mode = "hang"
	// Busy is Ollama's 503 "server busy" (queue full).
	Busy Mode = "busy"
	// Missing answers 404 model not found, whatever the model.
	Missing Mode = "missing"
	// ServerError is a 500 (runner crashed, load timeout).
	ServerError Mode = "server_error"
	// NonJSON answers prose instead of JSON, also on repair.
	NonJSON Mode = "non_json"
	// BadSchema answers JSON that breaks the schema; the repair request
	// (a conversation that already has an assistant turn) gets a valid
	// answer.
	BadSchema Mode = "bad_schema"
	// StreamError starts a 200 answer and ends it with an error (Ollama:
	// an {"error": ...} line; OpenAI: a body cut short).
	StreamError Mode = "stream_error"
	// Length answers a cut-off answer with done_reason/finish_reason
	// "length".
	Length Mode = "length"
)

// Request is one chat request as the fake received it.
type Request struct {
	Model    string
	Messages []Message
	// Format is Ollama's format or OpenAI's response_format, raw.
	Format json.RawMessage
	// NumCtx and NumPredict are Ollama's options (OpenAI: max_tokens in
	// NumPredict).
	NumCtx     int
	NumPredict int
	Stream     bool
	Auth       string
}

// Message is a chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Text is every message's content joined, to search for leaks.
func (r Request) Text() string {
	var b strings.Builder
	for _, m := range r.Messages {
		b.WriteString(m.Content)
		b.WriteByte('\n')
	}
	return b.String()
}

// Server is a fake model server.
type Server struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	mode     Mode
	script   []Mode
	models   []string
	loaded   []string
	latency  time.Duration
	slow     time.Duration
	answer   func(Request) string
	apiKey   string
	parallel chan struct{}
	maxQueue int
	queued   int

	calls       int
	inflight    int
	maxInflight int
	requests    []Request
	stop        chan struct{}
	stopOnce    sync.Once
}

// Option configures a fake.
type Option func(*Server)

// WithModels sets the models the server has (default "mistral:latest").
func WithModels(names ...string) Option { return func(s *Server) { s.models = names } }

// WithLoaded sets the models in memory (/api/ps; default: none).
func WithLoaded(names ...string) Option { return func(s *Server) { s.loaded = names } }

// WithLatency delays every normal answer.
func WithLatency(d time.Duration) Option { return func(s *Server) { s.latency = d } }

// WithSlowDelay is how long Slow answers take (default 10s).
func WithSlowDelay(d time.Duration) Option { return func(s *Server) { s.slow = d } }

// WithMode sets the starting mode.
func WithMode(m Mode) Option { return func(s *Server) { s.mode = m } }

// WithAnswer replaces the normal answer's content.
func WithAnswer(f func(Request) string) Option { return func(s *Server) { s.answer = f } }

// WithAPIKey makes the OpenAI fake demand "Authorization: Bearer key".
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithParallel limits requests processed at once, like OLLAMA_NUM_PARALLEL
// (default 1); others queue, up to maxQueue (OLLAMA_MAX_QUEUE, default
// 512), beyond which the server answers 503.
func WithParallel(n, maxQueue int) Option {
	return func(s *Server) { s.parallel = make(chan struct{}, n); s.maxQueue = maxQueue }
}

func newServer(tb testing.TB, h func(*Server) http.Handler, opts []Option) *Server {
	tb.Helper()
	s := &Server{mode: Normal, models: []string{"mistral:latest"}, slow: 10 * time.Second, maxQueue: 512, stop: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.parallel == nil {
		s.parallel = make(chan struct{}, 1)
	}
	if s.answer == nil {
		s.answer = DefaultAnswer
	}
	s.srv = httptest.NewServer(h(s))
	s.URL = s.srv.URL
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server; hanging requests end.
func (s *Server) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// SetMode changes the mode of the following calls.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// Script sets the modes of the next calls, one each, before falling back
// to the mode.
func (s *Server) Script(modes ...Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script[:0], modes...)
}

// SetModels changes the models present.
func (s *Server) SetModels(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.models = names
}

// SetLoaded changes the models in memory.
func (s *Server) SetLoaded(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = names
}

// Calls is the number of chat requests received.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// MaxConcurrent is the most chat requests seen at the same time.
func (s *Server) MaxConcurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInflight
}

// Requests returns the chat requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// begin records a chat request and picks its mode.
func (s *Server) begin(r Request) Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.inflight++
	s.maxInflight = max(s.maxInflight, s.inflight)
	s.requests = append(s.requests, r)
	if len(s.script) > 0 {
		m := s.script[0]
		s.script = s.script[1:]
		return m
	}
	return s.mode
}

func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
}

func (s *Server) hasModel(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.models {
		if sameModel(m, name) {
			return true
		}
	}
	return false
}

// slot waits for a processing slot like Ollama's scheduler; false means the
// queue is full (503) or the client went away.
func (s *Server) slot(r *http.Request) (func(), bool, bool) {
	s.mu.Lock()
	if s.queued >= s.maxQueue {
		s.mu.Unlock()
		return nil, false, true
	}
	s.queued++
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.queued--; s.mu.Unlock() }()
	select {
	case s.parallel <- struct{}{}:
		return func() { <-s.parallel }, true, false
	case <-r.Context().Done():
		return nil, false, false
	case <-s.stop:
		return nil, false, false
	}
}

// wait sleeps d unless the client goes away; false if it did.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.stop:
		return false
	}
}

func (s *Server) settings() (time.Duration, time.Duration, func(Request) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency, s.slow, s.answer
}

func sameModel(a, b string) bool {
	norm := func(x string) string {
		x = strings.ToLower(strings.TrimSpace(x))
		if !strings.Contains(x, ":") {
			x += ":latest"
		}
		return x
	}
	return norm(a) == norm(b)
}

// isRepair reports whether the conversation already holds an assistant
// turn: the advisor's one repair request.
func isRepair(r Request) bool {
	for _, m := range r.Messages {
		if m.Role == "assistant" {
			return true
		}
	}
	return false
}

// content is the answer text for a mode.
func content(mode Mode, r Request, answer func(Request) string) string {
	switch mode {
	case NonJSON:
		return "The pod is crashing. You should look at the logs and maybe restart it. I am not sure what else to say."
	case BadSchema:
		if isRepair(r) {
			return answer(r)
		}
		return `{"summary": "crashing", "confidence": "very sure", "next_steps": "restart it"}`
	case Length:
		a := answer(r)
		return a[:len(a)/2]
	default:
		return answer(r)
	}
}

// DefaultAnswer is a valid advice that quotes the prompt's headline (so the
// advisor's evidence check keeps the quote) and suggests a read-only and a
// destructive command, the latter deliberately not flagged as risky.
func DefaultAnswer(r Request) string {
	quote := ""
	for _, m := range r.Messages {
		for _, line := range strings.Split(m.Content, "\n") {
			if rest, ok := strings.CutPrefix(line, "headline: "); ok && quote == "" {
				quote = rest
			}
		}
	}
	ev := []string{}
	if quote != "" {
		ev = append(ev, quote)
	}
	b, _ := json.Marshal(map[string]any{
		"summary":      "The container exits right after start and Kubernetes keeps restarting it.",
		"likely_cause": "The application fails at start-up; the last log lines show the error.",
		"confidence":   "medium",
		"evidence":     ev,
		"next_steps": []map[string]any{
			{"command": "kubectl logs deploy/api --previous", "why": "see why the last run ended", "risky": false},
			{"command": "kubectl rollout restart deploy/api", "why": "restart once the config is fixed", "risky": false},
		},
	})
	return string(b)
}
