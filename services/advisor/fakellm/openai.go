package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

type openAIRequest struct {
	Model          string          `json:"model"`
	Messages       []Message       `json:"messages"`
	MaxTokens      int             `json:"max_tokens"`
	Stream         bool            `json:"stream"`
	ResponseFormat json.RawMessage `json:"response_format"`
}

// openAIError writes the error shape OpenAI, llama.cpp server and Ollama's
// /v1 share: {"error": {"message", "type", "code"}}.
func openAIError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

// NewOpenAI starts a fake OpenAI-compatible server.
func NewOpenAI(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	return newServer(tb, func(s *Server) http.Handler {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
			if !s.authorized(w, r) {
				return
			}
			s.mu.Lock()
			data := []map[string]any{}
			for _, m := range s.models {
				data = append(data, map[string]any{"id": m, "object": "model", "created": 1735689600, "owned_by": "library"})
			}
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
		})
		mux.HandleFunc("POST /v1/chat/completions", s.openAIChat)
		return mux
	}, opts)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	key := s.apiKey
	s.mu.Unlock()
	if key != "" && r.Header.Get("Authorization") != "Bearer "+key {
		openAIError(w, http.StatusUnauthorized, "invalid_request_error", "Incorrect API key provided.")
		return false
	}
	return true
}

func (s *Server) openAIChat(w http.ResponseWriter, r *http.Request) {
	var req openAIRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20)).Decode(&req); err != nil {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON body: "+err.Error())
		return
	}
	rec := Request{Model: req.Model, Messages: req.Messages, Format: req.ResponseFormat, NumPredict: req.MaxTokens, Stream: req.Stream, Auth: r.Header.Get("Authorization")}
	mode := s.begin(rec)
	defer s.end()
	if !s.authorized(w, r) {
		return
	}
	if req.Model == "" || len(req.Messages) == 0 {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "model and messages are required")
		return
	}
	if len(req.ResponseFormat) > 0 {
		var rf struct {
			Type       string `json:"type"`
			JSONSchema *struct {
				Name   string          `json:"name"`
				Schema json.RawMessage `json:"schema"`
			} `json:"json_schema"`
		}
		if err := json.Unmarshal(req.ResponseFormat, &rf); err != nil ||
			(rf.Type != "json_object" && rf.Type != "text" && (rf.Type != "json_schema" || rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 || rf.JSONSchema.Schema[0] != '{')) {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "invalid response_format")
			return
		}
	}
	if mode == Missing || !s.hasModel(req.Model) {
		openAIError(w, http.StatusNotFound, "api_error", fmt.Sprintf("model %q not found, try pulling it first", req.Model))
		return
	}
	if mode == Busy {
		openAIError(w, http.StatusServiceUnavailable, "server_error", "server busy, please try again.  maximum pending requests exceeded")
		return
	}
	release, ok, full := s.slot(r)
	if full {
		openAIError(w, http.StatusServiceUnavailable, "server_error", "server busy, please try again.  maximum pending requests exceeded")
		return
	}
	if !ok {
		return
	}
	defer release()
	latency, slow, answer := s.settings()
	switch mode {
	case Hang:
		s.wait(r, 24*time.Hour)
		return
	case Slow:
		if !s.wait(r, slow) {
			return
		}
	case ServerError:
		openAIError(w, http.StatusInternalServerError, "server_error", "llama runner process has terminated: exit status 2")
		return
	default:
		if !s.wait(r, latency) {
			return
		}
	}
	text := content(mode, rec, answer)
	finish := "stop"
	if mode == Length {
		finish = "length"
	}
	body, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
		"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant", "content": text}, "finish_reason": finish}},
		"usage":   map[string]int{"prompt_tokens": len(rec.Text()) / 4, "completion_tokens": len(text) / 4, "total_tokens": (len(rec.Text()) + len(text)) / 4},
	})
	w.Header().Set("Content-Type", "application/json")
	if mode == StreamError {
		// Promise the whole body, send half: the client sees the
		// connection end early.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
