package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/trace"
)

func readPayload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../pkg/envelope/testdata/" + name)
	require.NoError(t, err)
	return b
}

type fixture struct {
	js  *jsxtest.Env
	srv *Server
	h   http.Handler
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	e := jsxtest.Start(t)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(cfg, stage.Deps{JS: e.JS, NATS: e.Config, Log: zaptest.NewLogger(t), Metrics: prometheus.NewRegistry()}, Options{})
	require.NoError(t, err)
	return &fixture{js: e, srv: s, h: s.Handler()}
}

func (f *fixture) post(t *testing.T, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, AlertsPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Alertmanager/0.34.0")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) stored(t *testing.T) uint64 {
	t.Helper()
	return f.js.Messages(t, jsx.StreamAlerts, "alerts.received.>")
}

func errorMessage(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	require.NotEmpty(t, e.Error)
	return e.Error
}

func TestAcceptsAlertmanagerPayloads(t *testing.T) {
	for _, name := range []string{"alertmanager-v0.28.json", "alertmanager-v0.34.json"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, Config{})
			rec := f.post(t, readPayload(t, name), nil)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var a Accepted
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
			assert.Equal(t, "stored", a.Status)
			assert.Len(t, a.ID, 32)
			assert.Equal(t, uint64(1), f.stored(t))
		})
	}
}

func TestRejectsBadRequestsAndStoresNothing(t *testing.T) {
	valid := readPayload(t, "alertmanager-v0.28.json")
	cases := []struct {
		name   string
		body   []byte
		ctype  string
		status int
		want   string
	}{
		{"wrong content type", valid, "text/plain", http.StatusUnsupportedMediaType, "Content-Type must be application/json"},
		{"no content type", valid, "-", http.StatusUnsupportedMediaType, "Content-Type"},
		{"empty body", nil, "", http.StatusBadRequest, "body is empty"},
		{"not json", []byte("{\"version\": 4,"), "", http.StatusBadRequest, "not valid JSON"},
		{"wrong type", []byte(`{"version":"4","alerts":"many"}`), "", http.StatusBadRequest, "field alerts"},
		{"bad time", []byte(`{"version":"4","alerts":[{"startsAt":"yesterday"}]}`), "", http.StatusBadRequest, "RFC 3339"},
		{"too large", bytes.Repeat([]byte(" "), 5000), "", http.StatusRequestEntityTooLarge, "ingest.body_limit"},
		{"wrong version", bytes.Replace(valid, []byte(`"version": "4"`), []byte(`"version": "3"`), 1), "", http.StatusUnprocessableEntity, `version is "3"`},
		{"no alerts", []byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[]}`), "", http.StatusUnprocessableEntity, "alerts is empty"},
		{"alert without fingerprint", bytes.Replace(valid, []byte(`"fingerprint": "3f9a1c2b7d4e5f60"`), []byte(`"fingerprint": ""`), 1), "", http.StatusUnprocessableEntity, "alerts[0].fingerprint is missing"},
		{"charset is fine but json invalid", []byte("[]"), "application/json; charset=utf-8", http.StatusBadRequest, "field the body"},
	}
	f := newFixture(t, Config{BodyLimit: 4096})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			switch tc.ctype {
			case "":
			case "-":
				hdr["Content-Type"] = ""
			default:
				hdr["Content-Type"] = tc.ctype
			}
			rec := f.post(t, tc.body, hdr)
			assert.Equal(t, tc.status, rec.Code, rec.Body.String())
			assert.Contains(t, errorMessage(t, rec), tc.want)
		})
	}
	assert.Zero(t, f.stored(t), "nothing is stored for a bad request")
}

func TestDuplicatesAreDroppedByTheServer(t *testing.T) {
	f := newFixture(t, Config{})
	body := readPayload(t, "alertmanager-v0.28.json")
	var ids []string
	for i := range 5 {
		rec := f.post(t, body, nil)
		require.Equal(t, http.StatusOK, rec.Code)
		var a Accepted
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
		ids = append(ids, a.ID)
		if i == 0 {
			assert.Equal(t, "stored", a.Status)
		} else {
			assert.Equal(t, "duplicate", a.Status)
		}
	}
	assert.Equal(t, ids[0], ids[4])
	assert.Equal(t, uint64(1), f.stored(t))
}

func TestAnswers503WhenItCannotStore(t *testing.T) {
	f := newFixture(t, Config{PublishTimeout: 500 * time.Millisecond})
	f.js.Server.Shutdown()
	f.js.Server.WaitForShutdown()
	rec := f.post(t, readPayload(t, "alertmanager-v0.28.json"), nil)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "5xx so that Alertmanager retries; never 429")
	assert.Contains(t, errorMessage(t, rec), "Alertmanager will retry")
}

func TestAuth(t *testing.T) {
	body := readPayload(t, "alertmanager-v0.28.json")
	basic := func(u, p string) string {
		r, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	cfg := Config{Auth: AuthConfig{BearerToken: "s3cret-token", BasicUsername: "am", BasicPassword: "pw"}}
	f := newFixture(t, cfg)
	cases := []struct {
		name string
		auth string
		want int
	}{
		{"no credentials", "", http.StatusUnauthorized},
		{"right bearer", "Bearer s3cret-token", http.StatusOK},
		{"wrong bearer", "Bearer s3cret-tokeX", http.StatusUnauthorized},
		{"bearer prefix only", "Bearer s3cret", http.StatusUnauthorized},
		{"right basic", basic("am", "pw"), http.StatusOK},
		{"wrong basic", basic("am", "nope"), http.StatusUnauthorized},
		{"token as basic password", basic("am", "s3cret-token"), http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			rec := f.post(t, body, hdr)
			assert.Equal(t, tc.want, rec.Code, rec.Body.String())
			if tc.want == http.StatusUnauthorized {
				msg := errorMessage(t, rec)
				assert.Contains(t, msg, "http_config.authorization")
				assert.NotContains(t, msg, "s3cret")
				assert.NotEmpty(t, rec.Header().Values("WWW-Authenticate"))
			}
		})
	}
}

func TestRefusesOpenListenerWithoutAuth(t *testing.T) {
	cfg := Config{Listen: "0.0.0.0:0"}
	cfg.Defaults()
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SMARTMON_INGEST_TOKEN")

	cfg.AllowUnauthenticated = true
	require.NoError(t, cfg.Validate())

	cfg = Config{Listen: "[::]:9095"}
	cfg.Defaults()
	require.NoError(t, cfg.ApplyEnv(config.MapEnv(map[string]string{"SMARTMON_INGEST_TOKEN": "x"})))
	require.NoError(t, cfg.Validate())

	for _, l := range []string{"127.0.0.1:9095", "localhost:9095", "[::1]:9095"} {
		cfg = Config{Listen: l}
		cfg.Defaults()
		assert.NoError(t, cfg.Validate(), l)
	}
}

func TestHealthAndUnknownRoutes(t *testing.T) {
	f := newFixture(t, Config{})
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/nope": 404} {
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil))
		assert.Equal(t, want, rec.Code, path)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/nope", nil))
	assert.Contains(t, errorMessage(t, rec), AlertsPath)

	f.js.Server.Shutdown()
	f.js.Server.WaitForShutdown()
	rec = httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/readyz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}

func TestServesOverRealHTTP(t *testing.T) {
	f := newFixture(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL(), strings.NewReader(string(readPayload(t, "alertmanager-v0.34.json"))))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	require.NoError(t, <-done)
}

func TestTraceEndpointBehindAuth(t *testing.T) {
	e := jsxtest.Start(t)
	tr, err := trace.Open(context.Background(), e.JS, 1, zaptest.NewLogger(t))
	require.NoError(t, err)
	s, err := New(Config{Listen: "127.0.0.1:0", Auth: AuthConfig{BearerToken: "tok"}},
		stage.Deps{JS: e.JS, NATS: e.Config, Log: zaptest.NewLogger(t), Metrics: prometheus.NewRegistry(), Trace: tr}, Options{})
	require.NoError(t, err)
	f := &fixture{js: e, srv: s, h: s.Handler()}
	rec := f.post(t, readPayload(t, "alertmanager-v0.34.json"), map[string]string{"Authorization": "Bearer tok"})
	require.Equal(t, http.StatusOK, rec.Code)
	var a Accepted
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))

	get := func(path, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec
	}
	assert.Equal(t, http.StatusUnauthorized, get(AlertsPath+"/"+a.ID, "").Code)
	for _, key := range []string{a.ID, "0011223344556677"} { // notification id, alert fingerprint
		// The receipt is traced beside the answer, so it shows up shortly after.
		var rec *httptest.ResponseRecorder
		require.Eventually(t, func() bool {
			rec = get(AlertsPath+"/"+key, "Bearer tok")
			return rec.Code == http.StatusOK
		}, 10*time.Second, 10*time.Millisecond, "trace of %s never appeared", key)
		var ts []trace.Timeline
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ts))
		require.Len(t, ts, 1)
		assert.Equal(t, a.ID, ts[0].ID)
		assert.Equal(t, "stored", ts[0].Steps[0].Outcome)
	}
	rec = get(AlertsPath+"/unknown", "Bearer tok")
	assert.Equal(t, http.StatusNotFound, rec.Code)
	assert.Contains(t, errorMessage(t, rec), "no trace")
}
