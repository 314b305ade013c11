package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Ollama's wire shapes (api/types.go of github.com/ollama/ollama), written
// out here so the fake does not share code with the client it tests.
type ollamaChatRequest struct {
	Model    string          `json:"model"`
	Messages []Message       `json:"messages"`
	Stream   *bool           `json:"stream"`
	Format   json.RawMessage `json:"format"`
	Options  map[string]any  `json:"options"`
}

type ollamaChatChunk struct {
	Model           string  `json:"model"`
	CreatedAt       string  `json:"created_at"`
	Message         Message `json:"message"`
	Done            bool    `json:"done"`
	DoneReason      string  `json:"done_reason,omitempty"`
	TotalDuration   int64   `json:"total_duration,omitempty"`
	LoadDuration    int64   `json:"load_duration,omitempty"`
	PromptEvalCount int     `json:"prompt_eval_count,omitempty"`
	EvalCount       int     `json:"eval_count,omitempty"`
}

// OllamaVersion is what the fake reports on /api/version.
const OllamaVersion = "0.17.4"

// NewOllama starts a fake Ollama server.
func NewOllama(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	return newServer(tb, func(s *Server) http.Handler {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"version": OllamaVersion})
		})
		mux.HandleFunc("GET /api/tags", func(w http.ResponseWriter, _ *http.Request) {
			s.mu.Lock()
			models := []map[string]any{}
			for _, m := range s.models {
				models = append(models, map[string]any{
					"name": m, "model": m, "modified_at": time.Now().UTC().Format(time.RFC3339Nano),
					"size": 4113301824, "digest": "f974a74358d62a017b37c6f424fcdf2744ca02926c4f952513ddf474b2fa5091",
					"details": map[string]any{"format": "gguf", "family": "llama", "parameter_size": "7.2B", "quantization_level": "Q4_0"},
				})
			}
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"models": models})
		})
		mux.HandleFunc("GET /api/ps", func(w http.ResponseWriter, _ *http.Request) {
			s.mu.Lock()
			models := []map[string]any{}
			for _, m := range s.loaded {
				models = append(models, map[string]any{
					"name": m, "model": m, "size": 5137025024, "size_vram": 5137025024,
					"expires_at": time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339Nano), "context_length": 4096,
				})
			}
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"models": models})
		})
		mux.HandleFunc("POST /api/chat", s.ollamaChat)
		return mux
	}, opts)
}

func (s *Server) ollamaChat(w http.ResponseWriter, r *http.Request) {
	var req ollamaChatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid request: " + err.Error()})
		return
	}
	rec := Request{Model: req.Model, Messages: req.Messages, Format: req.Format, Stream: req.Stream == nil || *req.Stream, Auth: r.Header.Get("Authorization")}
	rec.NumCtx = intOption(req.Options, "num_ctx")
	rec.NumPredict = intOption(req.Options, "num_predict")
	mode := s.begin(rec)
	defer s.end()
	if req.Model == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "model is required"})
		return
	}
	if len(req.Format) > 0 && req.Format[0] != '{' && string(req.Format) != `"json"` {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid format: must be \"json\" or a JSON schema object"})
		return
	}
	if mode == Missing || !s.hasModel(req.Model) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("model '%s' not found", req.Model)})
		return
	}
	if mode == Busy {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "server busy, please try again.  maximum pending requests exceeded"})
		return
	}
	release, ok, full := s.slot(r)
	if full {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "server busy, please try again.  maximum pending requests exceeded"})
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
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "llama runner process has terminated: exit status 2"})
		return
	default:
		if !s.wait(r, latency) {
			return
		}
	}
	text := content(mode, rec, answer)
	doneReason := "stop"
	if mode == Length {
		doneReason = "length"
	}
	final := ollamaChatChunk{
		Model: req.Model, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano), Message: Message{Role: "assistant"},
		Done: true, DoneReason: doneReason, TotalDuration: int64(latency), PromptEvalCount: len(rec.Text()) / 4, EvalCount: len(text) / 4,
	}
	if !rec.Stream {
		final.Message.Content = text
		writeJSON(w, http.StatusOK, final)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	const chunk = 64
	for i := 0; i < len(text); i += chunk {
		part := text[i:min(i+chunk, len(text))]
		_ = enc.Encode(ollamaChatChunk{Model: req.Model, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano), Message: Message{Role: "assistant", Content: part}})
		if flusher != nil {
			flusher.Flush()
		}
		if mode == StreamError && i+chunk >= len(text)/2 {
			_ = enc.Encode(map[string]string{"error": "an error was encountered while running the model: unexpected EOF"})
			return
		}
	}
	_ = enc.Encode(final)
}

func intOption(opts map[string]any, key string) int {
	if v, ok := opts[key].(float64); ok {
		return int(v)
	}
	return 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
