package advisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxOpenAIBody bounds how much of an answer is read: an answer is at most
// num_predict tokens, a few kilobytes; anything larger is a broken server.
const maxOpenAIBody = 8 << 20

// OpenAI talks to any server that speaks the OpenAI chat-completions API
// (llama.cpp server, vLLM, LocalAI, Ollama's /v1).
type OpenAI struct {
	cfg    Config
	base   string
	server string
	hc     *http.Client
}

// NewOpenAI builds the OpenAI-compatible backend.
func NewOpenAI(cfg Config) (*OpenAI, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil {
		return nil, fmt.Errorf("openai url: %w", err)
	}
	return &OpenAI{cfg: cfg, base: u.String(), server: u.Redacted(), hc: newHTTPClient(cfg.CallTimeout)}, nil
}

// Name implements Backend.
func (o *OpenAI) Name() string { return BackendOpenAI }

type oaRequest struct {
	Model          string    `json:"model"`
	Messages       []Message `json:"messages"`
	Temperature    float64   `json:"temperature"`
	MaxTokens      int       `json:"max_tokens"`
	Stream         bool      `json:"stream"`
	ResponseFormat *oaFormat `json:"response_format,omitempty"`
}

type oaFormat struct {
	Type       string        `json:"type"`
	JSONSchema *oaJSONSchema `json:"json_schema,omitempty"`
}

type oaJSONSchema struct {
	Name   string          `json:"name"`
	Strict bool            `json:"strict"`
	Schema json.RawMessage `json:"schema"`
}

type oaResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// oaError covers the error bodies of the servers we target:
// {"error":{"message":...}} (OpenAI, llama.cpp, Ollama), {"error":"..."}
// and {"message":...} (vLLM).
type oaError struct {
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
}

func (e oaError) text() string {
	if len(e.Error) > 0 {
		var obj struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" {
			return s
		}
	}
	return e.Message
}

// Chat implements Backend: POST /v1/chat/completions with response_format
// json_schema.
func (o *OpenAI) Chat(ctx context.Context, req ChatRequest) (ChatResponse, error) {
	body := oaRequest{
		Model: o.cfg.Model, Messages: req.Messages, Temperature: *o.cfg.Temperature, MaxTokens: o.cfg.NumPredict,
	}
	if len(req.Schema) > 0 {
		body.ResponseFormat = &oaFormat{Type: "json_schema", JSONSchema: &oaJSONSchema{Name: "advice", Strict: true, Schema: req.Schema}}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return ChatResponse{}, &CallError{Kind: KindBadRequest, Msg: "encode request: " + err.Error(), Err: err}
	}
	var out oaResponse
	if err := o.do(ctx, http.MethodPost, "/v1/chat/completions", data, &out); err != nil {
		return ChatResponse{}, err
	}
	if len(out.Choices) == 0 {
		return ChatResponse{}, &CallError{Kind: KindStream, Msg: "the answer has no choices"}
	}
	c := out.Choices[0]
	return ChatResponse{
		Content: c.Message.Content, Truncated: c.FinishReason == "length",
		PromptTokens: out.Usage.PromptTokens, OutputTokens: out.Usage.CompletionTokens,
	}, nil
}

func (o *OpenAI) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, o.base+path, rd)
	if err != nil {
		return &CallError{Kind: KindBadRequest, Msg: "build request: " + errText(err), Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if o.cfg.APIKey.Set() {
		req.Header.Set("Authorization", "Bearer "+o.cfg.APIKey.Reveal())
	}
	resp, err := o.hc.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxOpenAIBody))
	if err != nil {
		return transportError(ctx, err)
	}
	if resp.StatusCode >= 300 {
		var e oaError
		msg := ""
		if json.Unmarshal(raw, &e) == nil {
			msg = e.text()
		}
		if msg == "" {
			msg = strings.TrimSpace(string(raw))
		}
		return &CallError{Kind: kindOfStatus(resp.StatusCode), Status: resp.StatusCode, Msg: clip(msg, 300)}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &CallError{Kind: KindStream, Msg: "the answer is not the expected JSON: " + clip(err.Error(), 200), Err: err}
	}
	return nil
}

// Describe implements Backend.
func (o *OpenAI) Describe(e *CallError) string {
	switch e.Kind {
	case KindUnreachable:
		return fmt.Sprintf("no model at %s (start the OpenAI-compatible server with model %s)", o.server, o.cfg.Model)
	case KindModelMissing:
		return fmt.Sprintf("model %s not found on %s: load it on the server (for Ollama: run `ollama pull %s`)", o.cfg.Model, o.server, o.cfg.Model)
	case KindBusy:
		return fmt.Sprintf("model server at %s is busy: %s", o.server, e.Msg)
	case KindAuth:
		return fmt.Sprintf("model server at %s refused the request (HTTP %d): check SMARTMON_LLM_API_KEY", o.server, e.Status)
	case KindTimeout:
		return fmt.Sprintf("model %s on %s did not answer in time", o.cfg.Model, o.server)
	default:
		return fmt.Sprintf("model server at %s: %s", o.server, e.Error())
	}
}

// Probe implements Backend: GET /v1/models. The API has no version or
// loaded-state endpoint.
func (o *OpenAI) Probe(ctx context.Context) ModelState {
	var st ModelState
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := o.do(ctx, http.MethodGet, "/v1/models", nil, &list); err != nil {
		var ce *CallError
		if !errors.As(err, &ce) {
			ce = &CallError{Kind: KindUnreachable, Msg: errText(err)}
		}
		if ce.Kind == KindTimeout || ce.Kind == KindModelMissing {
			ce.Kind = KindUnreachable
		}
		st.Problem = o.Describe(ce)
		return st
	}
	st.Reachable, st.Version = true, "openai-compatible"
	for _, m := range list.Data {
		if m.ID == o.cfg.Model || sameModel(m.ID, o.cfg.Model) {
			st.Present = true
		}
	}
	if !st.Present {
		st.Problem = o.Describe(&CallError{Kind: KindModelMissing})
	}
	return st
}
