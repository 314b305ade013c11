package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
)

// fuzzSeeds are real Alertmanager bodies and the ways they go wrong.
func fuzzSeeds(t testing.TB) [][]byte {
	t.Helper()
	read := func(name string) []byte {
		b, err := readPayloadTB(name)
		if err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
		return b
	}
	v28, v34 := read("alertmanager-v0.28.json"), read("alertmanager-v0.34.json")
	sample, err := json.Marshal(envelope.SampleCrashLoop(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), false))
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := json.Marshal(envelope.SampleCrashLoop(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), true))
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		v28, v34, sample, resolved,
		v28[:len(v28)/2], // cut off mid-body
		[]byte(strings.Replace(string(v34), `"version": "4"`, `"version": "5"`, 1)),
		[]byte(strings.Replace(string(v28), `"firing"`, `"burning"`, 1)),
		[]byte(`{}`), []byte(``), []byte(`null`), []byte(`[]`), []byte(`"4"`),
		[]byte(`{"version":"4","groupKey":"{}:{}","status":"firing","alerts":[]}`),
		[]byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"X"},"startsAt":"yesterday"}]}`),
		[]byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"@everyone"},"startsAt":"2026-01-02T03:04:05Z","fingerprint":"0"}]}`),
		[]byte(`{"version":4}`), []byte(`{"alerts":{}}`), []byte("\xff\xfe{"), bytes.Repeat([]byte("["), 10000),
	}
}

func readPayloadTB(name string) ([]byte, error) {
	return os.ReadFile("../../pkg/envelope/testdata/" + name)
}

// FuzzDecode: the decoder never panics and returns either a validated
// webhook or an error, never both or neither.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := Decode(data)
		if (w == nil) == (err == nil) {
			t.Fatalf("Decode returned webhook %v and error %v", w, err)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if verr := w.Validate(); verr != nil {
			t.Fatalf("Decode accepted a webhook that does not validate: %v", verr)
		}
	})
}

// FuzzHandler posts fuzzed bodies, content types and credentials to the
// real handler backed by a real JetStream: it never panics, answers only
// 200 or a 4xx/503 with a JSON {"error": "..."} body, and a 200 says what
// was stored.
func FuzzHandler(f *testing.F) {
	const token = "fuzz-token-0123456789"
	for _, s := range fuzzSeeds(f) {
		f.Add(s, "application/json", "Bearer "+token)
	}
	f.Add([]byte(`{}`), "text/plain", "Bearer "+token)
	f.Add([]byte(`{}`), "application/json; charset=utf-8", "")
	f.Add([]byte(`{}`), "application/json", "Bearer wrong")
	f.Add([]byte(`{}`), "application/json", "Basic dXNlcjpwYXNz")
	f.Add(bytes.Repeat([]byte(" "), 70<<10), "application/json", "Bearer "+token) // over the body limit

	e := jsxtest.Start(f)
	cfg := Config{Listen: "127.0.0.1:0", BodyLimit: 64 << 10}
	cfg.Auth.BearerToken = config.Secret(token)
	cfg.Defaults()
	s, err := New(cfg, stage.Deps{JS: e.JS, NATS: e.Config, Log: zap.NewNop(), Metrics: prometheus.NewRegistry()}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()

	f.Fuzz(func(t *testing.T, body []byte, contentType, authorization string) {
		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, AlertsPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", authorization)
		req.Header.Set("User-Agent", "Alertmanager/0.34.0")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		code := rec.Code
		if code != http.StatusOK && code != http.StatusServiceUnavailable && (code < 400 || code > 499) {
			t.Fatalf("status %d, want 200, 4xx or 503; body %s", code, rec.Body.String())
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("status %d with Content-Type %q, want JSON", code, ct)
		}
		if code == http.StatusOK {
			var a Accepted
			if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.ID == "" || (a.Status != "stored" && a.Status != "duplicate") {
				t.Fatalf("200 with body %q (%v)", rec.Body.String(), err)
			}
			return
		}
		var ae apiError
		if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil || ae.Error == "" {
			t.Fatalf("status %d with body %q: want {\"error\": \"...\"} (%v)", code, rec.Body.String(), err)
		}
		if strings.Contains(ae.Error, token) {
			t.Fatalf("the error message reveals the token: %q", ae.Error)
		}
	})
}
