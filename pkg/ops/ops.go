// Package ops serves what operators and orchestrators poll: /healthz (the
// process is alive), /readyz (it can do its job: NATS and the stream are
// there; stages add detail such as the model's state) and /metrics.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
)

// Health answers the probes.
type Health struct {
	JS       jetstream.JetStream
	Checkers map[string]stage.Checker
}

// Check is one readiness component.
type Check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Report is the /readyz body.
type Report struct {
	Ready  bool             `json:"ready"`
	Checks map[string]Check `json:"checks"`
}

// Ready runs every check with a short deadline.
func (h *Health) Ready(ctx context.Context) Report {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r := Report{Ready: true, Checks: map[string]Check{}}
	if h.JS != nil {
		if err := jsx.Ready(ctx, h.JS); err != nil {
			r.Ready = false
			r.Checks["nats"] = Check{Detail: err.Error()}
		} else {
			r.Checks["nats"] = Check{OK: true, Detail: "stream " + jsx.StreamAlerts + " reachable"}
		}
	}
	names := make([]string, 0, len(h.Checkers))
	for n := range h.Checkers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		detail, err := h.Checkers[n].Check(ctx)
		if err != nil {
			r.Ready = false
			r.Checks[n] = Check{Detail: err.Error()}
			continue
		}
		r.Checks[n] = Check{OK: true, Detail: detail}
	}
	return r
}

// HealthzHandler always answers 200 while the process serves HTTP.
func HealthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
}

// ReadyzHandler answers 200 or 503 with the report.
func (h *Health) ReadyzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := h.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !rep.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
}

// MetricsHandler serves a registry in the Prometheus format.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// Mux returns a mux with the three endpoints.
func (h *Health) Mux(g prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", HealthzHandler())
	mux.Handle("GET /readyz", h.ReadyzHandler())
	if g != nil {
		mux.Handle("GET /metrics", MetricsHandler(g))
	}
	return mux
}

// Server is a small HTTP server that shuts down gracefully with its context.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr now, so a port in use fails at start, not later.
func Listen(addr string, h http.Handler) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &Server{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}}, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx ends, then stops accepting and waits up to 10s for
// requests in flight (an ingest request in flight is an alert being stored).
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
