package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/ops"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/trace"
)

// AlertsPath is where Alertmanager posts.
const AlertsPath = "/api/v1/alerts"

// Options are the optional parts of the server.
type Options struct {
	// Gatherer backs /metrics; nil serves no metrics.
	Gatherer prometheus.Gatherer
	// Checkers add readiness detail (model state, ...).
	Checkers map[string]stage.Checker
	// Trace records receipt and serves GET /api/v1/alerts/{id}; deps.Trace
	// if nil.
	Trace *trace.Recorder
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Server is the ingest HTTP server.
type Server struct {
	cfg    Config
	deps   stage.Deps
	opts   Options
	echo   *echo.Echo
	srv    *ops.Server
	health *ops.Health
	m      metrics
	// Precomputed hashes of the credentials: comparing fixed-size
	// digests in constant time leaks neither content nor length.
	bearer [32]byte
	basic  [32]byte
	// The trace write of a receipt (a few KV round trips per alert) runs
	// beside the answer, not before it: Alertmanager waits on ingest, the
	// trace is for people. traceSlots bounds those writes; Run waits for
	// them before it returns.
	traceSlots chan struct{}
	traces     sync.WaitGroup
}

type metrics struct {
	received  prometheus.Counter
	alerts    prometheus.Counter
	duplicate prometheus.Counter
	rejected  *prometheus.CounterVec
	latency   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmon_ingest_notifications_received_total",
			Help: "Alertmanager notifications stored in JetStream (duplicates excluded).",
		}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmon_ingest_alerts_received_total",
			Help: "Alerts inside stored notifications.",
		}),
		duplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmon_ingest_notifications_deduplicated_total",
			Help: "Notifications dropped as duplicates (Alertmanager HA pairs, retries).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartmon_ingest_requests_rejected_total",
			Help: "Requests refused, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartmon_ingest_store_duration_seconds",
			Help:    "Time from request to JetStream's publish ack.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.received, m.alerts, m.duplicate, m.rejected, m.latency)
	}
	return m
}

// New validates the config and binds the listener.
func New(cfg Config, deps stage.Deps, opts Options) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Trace == nil {
		opts.Trace = deps.Trace
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	deps.Log = deps.Log.With(zap.String("stage", envelope.StageIngest))
	s := &Server{
		cfg: cfg, deps: deps, opts: opts, m: newMetrics(deps.Metrics),
		health:     &ops.Health{JS: deps.JS, Checkers: opts.Checkers},
		traceSlots: make(chan struct{}, maxTraceWrites),
	}
	if cfg.Auth.BearerToken.Set() {
		s.bearer = sha256.Sum256([]byte(cfg.Auth.BearerToken.Reveal()))
	}
	if cfg.Auth.BasicUsername != "" {
		s.basic = sha256.Sum256([]byte(cfg.Auth.BasicUsername + ":" + cfg.Auth.BasicPassword.Reveal()))
	}
	s.echo = s.routes()
	srv, err := ops.Listen(cfg.Listen, s.echo)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s.srv = srv
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.srv.Addr() }

// URL is the webhook URL for Alertmanager.
func (s *Server) URL() string { return "http://" + s.Addr().String() + AlertsPath }

// Run serves until ctx ends, then lets requests in flight finish.
func (s *Server) Run(ctx context.Context) error {
	s.deps.Log.Info("ingest listening",
		zap.String("url", s.URL()), zap.Stringer("auth", s.cfg.Auth))
	err := s.srv.Serve(ctx)
	s.traces.Wait()
	return err
}

// maxTraceWrites bounds receipt traces in flight; beyond it a request
// writes its own trace before answering, which slows senders rather than
// growing goroutines without end.
const maxTraceWrites = 64

func (s *Server) traceReceived(rctx context.Context, env *envelope.Envelope, status string) {
	if s.opts.Trace == nil {
		return
	}
	record := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(rctx), 2*time.Second)
		defer cancel()
		n := env.Notification
		s.opts.Trace.Received(ctx, env, status, fmt.Sprintf("%d alerts, %s", len(n.Alerts), n.Status))
	}
	select {
	case s.traceSlots <- struct{}{}:
		s.traces.Go(func() {
			defer func() { <-s.traceSlots }()
			record()
		})
	default:
		record()
	}
}

// Handler exposes the HTTP handler (tests, benchmarks).
func (s *Server) Handler() http.Handler { return s.echo }

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.GET("/healthz", echo.WrapHandler(ops.HealthzHandler()))
	e.GET("/readyz", echo.WrapHandler(s.health.ReadyzHandler()))
	if s.opts.Gatherer != nil {
		e.GET("/metrics", echo.WrapHandler(ops.MetricsHandler(s.opts.Gatherer)))
	}
	e.POST(AlertsPath, s.receive, s.auth)
	e.GET(AlertsPath+"/:id", s.lookup, s.auth)
	return e
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func (s *Server) reject(c echo.Context, status int, reason, msg string) error {
	s.m.rejected.WithLabelValues(reason).Inc()
	s.deps.Log.Info("request rejected", zap.Int("status", status), zap.String("reason", reason),
		zap.String("error", msg), zap.String("remote", c.RealIP()), zap.String("user_agent", c.Request().UserAgent()))
	return c.JSON(status, apiError{Error: msg})
}

// errorHandler turns echo's own errors (404, 405) into our JSON shape.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		msg = strings.ToLower(http.StatusText(status))
		if status == http.StatusNotFound {
			msg = "no such endpoint: Alertmanager posts to " + AlertsPath
		}
		if status == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("method %s not allowed on %s", c.Request().Method, c.Request().URL.Path)
		}
	} else {
		s.deps.Log.Error("request failed", zap.Error(err))
	}
	_ = c.JSON(status, apiError{Error: msg})
}

func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	if !s.cfg.Auth.Enabled() {
		return next
	}
	return func(c echo.Context) error {
		req := c.Request()
		if s.cfg.Auth.BearerToken.Set() {
			if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
				h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
				if subtle.ConstantTimeCompare(h[:], s.bearer[:]) == 1 {
					return next(c)
				}
			}
		}
		if s.cfg.Auth.BasicUsername != "" {
			if u, p, ok := req.BasicAuth(); ok {
				h := sha256.Sum256([]byte(u + ":" + p))
				if subtle.ConstantTimeCompare(h[:], s.basic[:]) == 1 {
					return next(c)
				}
			}
		}
		var schemes []string
		if s.cfg.Auth.BearerToken.Set() {
			schemes = append(schemes, "Bearer")
			c.Response().Header().Add("WWW-Authenticate", `Bearer realm="smartmon"`)
		}
		if s.cfg.Auth.BasicUsername != "" {
			schemes = append(schemes, "Basic")
			c.Response().Header().Add("WWW-Authenticate", `Basic realm="smartmon"`)
		}
		return s.reject(c, http.StatusUnauthorized, "unauthorized",
			"missing or wrong credentials: send "+strings.Join(schemes, " or ")+
				" auth (Alertmanager: http_config.authorization or basic_auth in the webhook receiver)")
	}
}

// Accepted is the body of a 200 answer.
type Accepted struct {
	ID     string `json:"id"`
	Status string `json:"status"` // stored or duplicate
	Alerts int    `json:"alerts"`
}

func (s *Server) receive(c echo.Context) error {
	start := s.opts.Now()
	req := c.Request()
	ct := req.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return s.reject(c, http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("Content-Type must be application/json, got %q", ct))
	}
	limit := int64(s.cfg.BodyLimit)
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return s.reject(c, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("body is larger than %d bytes (ingest.body_limit): set max_alerts in the Alertmanager webhook receiver, or raise the limit", limit))
		}
		return s.reject(c, http.StatusBadRequest, "read_error", "reading the body failed: "+err.Error())
	}
	w, err := Decode(data)
	if err != nil {
		var ve *envelope.ValidationError
		if errors.As(err, &ve) {
			return s.reject(c, http.StatusUnprocessableEntity, "invalid", err.Error())
		}
		return s.reject(c, http.StatusBadRequest, "bad_json", err.Error())
	}
	env, err := envelope.New(*w, start)
	if err != nil {
		return s.reject(c, http.StatusUnprocessableEntity, "invalid", err.Error())
	}
	env.Record(envelope.StageRecord{
		Stage: envelope.StageIngest, Started: start.UTC(), Duration: time.Since(start),
		Note: "from " + req.UserAgent(),
	})

	ctx, cancel := context.WithTimeout(req.Context(), s.cfg.PublishTimeout)
	defer cancel()
	dup, err := jsx.PublishEnvelope(ctx, s.deps.JS, jsx.SubjectReceived, env, envelope.StageIngest)
	if err != nil {
		// 503, never 429: Alertmanager retries 5xx and treats every 4xx
		// as permanent.
		s.m.rejected.WithLabelValues("store_failed").Inc()
		s.deps.Log.Error("cannot store notification; answered 503 so Alertmanager retries",
			zap.String("alert_id", env.ID), zap.Error(err))
		c.Response().Header().Set("Retry-After", "5")
		return c.JSON(http.StatusServiceUnavailable, apiError{
			Error: "cannot store the notification right now (Alertmanager will retry): " + err.Error(),
		})
	}
	s.m.latency.Observe(time.Since(start).Seconds())
	status := "stored"
	if dup {
		status = "duplicate"
		s.m.duplicate.Inc()
	} else {
		s.m.received.Inc()
		s.m.alerts.Add(float64(len(w.Alerts)))
	}
	s.deps.Log.Info("notification received", zap.String("alert_id", env.ID), zap.String("status", status),
		zap.String("alertname", env.AlertName()), zap.Int("alerts", len(w.Alerts)))
	s.traceReceived(req.Context(), env, status)
	return c.JSON(http.StatusOK, Accepted{ID: env.ID, Status: status, Alerts: len(w.Alerts)})
}

func (s *Server) lookup(c echo.Context) error {
	if s.opts.Trace == nil {
		return c.JSON(http.StatusNotFound, apiError{Error: "tracing is not enabled on this ingest"})
	}
	ts, err := s.opts.Trace.Lookup(c.Request().Context(), c.Param("id"))
	if errors.Is(err, trace.ErrNotFound) {
		return c.JSON(http.StatusNotFound, apiError{Error: err.Error()})
	}
	if err != nil {
		return c.JSON(http.StatusServiceUnavailable, apiError{Error: err.Error()})
	}
	return c.JSON(http.StatusOK, ts)
}

// Decode parses and validates a webhook body. Syntax and type errors say
// where the problem is; a validation error is an *envelope.ValidationError.
func Decode(data []byte) (*envelope.Webhook, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("body is empty: expected Alertmanager's webhook JSON")
	}
	var w envelope.Webhook
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, describeJSONError(err)
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return &w, nil
}

func describeJSONError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var pe *time.ParseError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("body is not valid JSON (at byte %d): %s", se.Offset, se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the body"
		}
		return fmt.Errorf("field %s: got a JSON %s, want %s", field, te.Value, te.Type)
	case errors.As(err, &pe):
		return fmt.Errorf("a time field is not RFC 3339 (%q)", pe.Value)
	default:
		return fmt.Errorf("body is not a valid Alertmanager webhook: %s", err.Error())
	}
}
