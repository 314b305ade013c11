package advisor

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ollama/ollama/api"
)

// Ollama talks to an Ollama server through its own Go client, given our own
// http.Client: the client's default (http.DefaultClient) has no timeout.
type Ollama struct {
	cfg    Config
	server string // redacted base URL for messages
	client *api.Client
}

// NewOllama builds the Ollama backend.
func NewOllama(cfg Config) (*Ollama, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil {
		return nil, fmt.Errorf("ollama url: %w", err)
	}
	return &Ollama{cfg: cfg, server: u.Redacted(), client: api.NewClient(u, newHTTPClient(cfg.CallTimeout))}, nil
}

// Name implements Backend.
func (o *Ollama) Name() string { return BackendOllama }

// Chat implements Backend: /api/chat, streamed, so a cut-off or failing
// stream is seen as such, with format set to the answer's JSON Schema.
func (o *Ollama) Chat(ctx context.Context, req ChatRequest) (ChatResponse, error) {
	stream := true
	msgs := make([]api.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = api.Message{Role: m.Role, Content: m.Content}
	}
	areq := &api.ChatRequest{
		Model:    o.cfg.Model,
		Messages: msgs,
		Stream:   &stream,
		Format:   req.Schema,
		Options: map[string]any{
			"num_ctx":     o.cfg.NumCtx,
			"num_predict": o.cfg.NumPredict,
			"temperature": *o.cfg.Temperature,
		},
	}
	if o.cfg.KeepAlive > 0 {
		areq.KeepAlive = &api.Duration{Duration: o.cfg.KeepAlive}
	}
	var (
		b    strings.Builder
		resp ChatResponse
		done bool
	)
	err := o.client.Chat(ctx, areq, func(r api.ChatResponse) error {
		b.WriteString(r.Message.Content)
		if r.Done {
			done = true
			resp.Truncated = r.DoneReason == "length"
			resp.PromptTokens = r.PromptEvalCount
			resp.OutputTokens = r.EvalCount
			resp.LoadDuration = r.LoadDuration
		}
		return nil
	})
	if err != nil {
		return ChatResponse{}, o.classify(ctx, err)
	}
	if !done {
		// The client stops reading silently when the body breaks (it
		// does not check the scanner's error): a stream without its
		// final "done" line is a failed call, not an answer.
		if ctx.Err() != nil {
			return ChatResponse{}, &CallError{Kind: KindTimeout, Msg: "no complete answer in time", Err: ctx.Err()}
		}
		return ChatResponse{}, &CallError{Kind: KindStream, Msg: "the answer stream ended before it was done"}
	}
	resp.Content = b.String()
	return resp, nil
}

func (o *Ollama) classify(ctx context.Context, err error) *CallError {
	var se api.StatusError
	if errors.As(err, &se) {
		return &CallError{Kind: kindOfStatus(se.StatusCode), Status: se.StatusCode, Msg: clip(se.ErrorMessage, 300), Err: err}
	}
	var ae api.AuthorizationError
	if errors.As(err, &ae) {
		return &CallError{Kind: KindAuth, Status: ae.StatusCode, Msg: "unauthorized", Err: err}
	}
	if ctx.Err() != nil {
		return &CallError{Kind: KindTimeout, Msg: "no answer in time", Err: err}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return transportError(ctx, err)
	}
	// The client turns an {"error": ...} line inside a 200 stream into a
	// plain error.
	return &CallError{Kind: KindStream, Msg: "the server ended the answer with an error: " + clip(err.Error(), 300), Err: err}
}

// Describe implements Backend: the sentence a person reads in chat.
func (o *Ollama) Describe(e *CallError) string {
	switch e.Kind {
	case KindUnreachable:
		return fmt.Sprintf("no model at %s (start Ollama and run `ollama pull %s`)", o.server, o.cfg.Model)
	case KindModelMissing:
		return fmt.Sprintf("model %s not found on %s: run `ollama pull %s`", o.cfg.Model, o.server, o.cfg.Model)
	case KindBusy:
		return fmt.Sprintf("ollama at %s is busy (queue full): %s", o.server, e.Msg)
	case KindAuth:
		return fmt.Sprintf("ollama at %s refused the request (HTTP %d): check the credentials", o.server, e.Status)
	case KindTimeout:
		return fmt.Sprintf("model %s on %s did not answer in time", o.cfg.Model, o.server)
	default:
		return fmt.Sprintf("ollama at %s: %s", o.server, e.Error())
	}
}

// Probe implements Backend: /api/version, /api/tags, /api/ps.
func (o *Ollama) Probe(ctx context.Context) ModelState {
	var st ModelState
	v, err := o.client.Version(ctx)
	if err != nil {
		ce := o.classify(ctx, err)
		if ce.Kind == KindTimeout {
			ce.Kind = KindUnreachable // a server that cannot say its version is not usable
		}
		st.Problem = o.Describe(ce)
		return st
	}
	st.Reachable, st.Version = true, v
	tags, err := o.client.List(ctx)
	if err != nil {
		st.Problem = fmt.Sprintf("ollama %s at %s: cannot list models: %s", v, o.server, errText(err))
		return st
	}
	for _, m := range tags.Models {
		if sameModel(m.Name, o.cfg.Model) || sameModel(m.Model, o.cfg.Model) {
			st.Present = true
		}
	}
	if !st.Present {
		st.Problem = fmt.Sprintf("model %s not found on %s: run `ollama pull %s`", o.cfg.Model, o.server, o.cfg.Model)
		return st
	}
	ps, err := o.client.ListRunning(ctx)
	if err != nil {
		return st // presence is what matters; loaded state stays unknown
	}
	st.KnowsLoaded = true
	for _, m := range ps.Models {
		if sameModel(m.Name, o.cfg.Model) || sameModel(m.Model, o.cfg.Model) {
			st.Loaded = true
		} else {
			st.OtherLoaded = append(st.OtherLoaded, m.Name)
		}
	}
	return st
}

// sameModel compares model names the way Ollama resolves them: no tag
// means ":latest".
func sameModel(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "library/")
		if !strings.Contains(s, ":") {
			s += ":latest"
		}
		return s
	}
	return a != "" && norm(a) == norm(b)
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
