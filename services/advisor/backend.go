package advisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatRequest is what the stage asks a backend; the backend adds the model,
// the limits and the structured-output format of its own API.
type ChatRequest struct {
	Messages []Message
	// Schema is the JSON Schema the answer must follow.
	Schema json.RawMessage
}

// ChatResponse is a backend's answer.
type ChatResponse struct {
	Content string
	// Truncated is true when the model stopped at the token cap
	// (Ollama done_reason "length", OpenAI finish_reason "length").
	Truncated    bool
	PromptTokens int
	OutputTokens int
	// LoadDuration is how long the server spent loading the model.
	LoadDuration time.Duration
}

// Backend is a model server. Interfaces live where they are used: the stage
// needs a chat call and a state probe, nothing else.
type Backend interface {
	Name() string
	Chat(ctx context.Context, req ChatRequest) (ChatResponse, error)
	// Probe asks the server for its version, the model's presence and
	// whether it is loaded.
	Probe(ctx context.Context) ModelState
	// Describe turns a failed call into the sentence a person reads in
	// chat, with the fix when there is one.
	Describe(e *CallError) string
}

// ErrKind classifies a failed call once, where the status is known, so the
// retry loop, the breaker and the reason text read a decision instead of
// matching strings.
type ErrKind string

// Kinds of call failure.
const (
	KindUnreachable  ErrKind = "unreachable"   // connection refused, DNS: no server
	KindModelMissing ErrKind = "model_missing" // 404: pull the model
	KindBusy         ErrKind = "busy"          // 503/429: queue full, retry later
	KindServer       ErrKind = "server"        // other 5xx: load timeout, crash
	KindBadRequest   ErrKind = "bad_request"   // 400 and other 4xx: our request is wrong
	KindAuth         ErrKind = "auth"          // 401/403: API key
	KindTimeout      ErrKind = "timeout"       // the call's own deadline
	KindStream       ErrKind = "stream"        // a 200 stream that ended in an error line, or a broken body
)

// CallError is a failed model call with its classification.
type CallError struct {
	Kind   ErrKind
	Status int
	// Msg is the server's message, already safe to show (no URL secrets).
	Msg string
	Err error
}

// Error renders the kind, the status and the server's message.
func (e *CallError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (HTTP %d): %s", e.Kind, e.Status, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Msg)
}

// Unwrap returns the underlying error, if any.
func (e *CallError) Unwrap() error { return e.Err }

// Retryable reports whether another attempt may succeed: 503 busy, 5xx,
// timeouts and broken streams are; 404, 400, auth and a missing server are
// not (they need a person).
func (e *CallError) Retryable() bool {
	switch e.Kind {
	case KindBusy, KindServer, KindTimeout, KindStream:
		return true
	default:
		return false
	}
}

// countsForBreaker reports whether the failure says the model is down (as
// opposed to a problem with one request, or a server that is merely busy).
func (e *CallError) countsForBreaker() bool {
	switch e.Kind {
	case KindUnreachable, KindModelMissing, KindServer, KindTimeout, KindStream, KindAuth:
		return true
	default:
		return false
	}
}

// kindOfStatus classifies an HTTP status.
func kindOfStatus(status int) ErrKind {
	switch {
	case status == http.StatusNotFound:
		return KindModelMissing
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		return KindBusy
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return KindAuth
	case status >= 500:
		return KindServer
	default:
		return KindBadRequest
	}
}

// transportError classifies an error from http.Client.Do or a body read.
func transportError(ctx context.Context, err error) *CallError {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &CallError{Kind: KindTimeout, Msg: "no answer in time", Err: err}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &CallError{Kind: KindUnreachable, Msg: "cannot connect", Err: err}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return &CallError{Kind: KindUnreachable, Msg: "cannot resolve the host", Err: err}
	}
	return &CallError{Kind: KindStream, Msg: "connection broken: " + errText(err), Err: err}
}

// errText renders an error for a reason without the URL that url.Error
// repeats (it may carry a password).
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// newHTTPClient is the backends' own client: the library default has no
// timeout, a hung server would hold a call forever.
func newHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Timeout: timeout, Transport: tr}
}
