package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/enricher"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/ingest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
)

// Options are the process-level parts that are not configuration.
type Options struct {
	// Console receives the console sink's messages (stdout in main).
	Console io.Writer
	// Registry collects metrics; a new one if nil.
	Registry *prometheus.Registry
	// Enricher options, e.g. a client instead of the resolved cluster
	// access (tests).
	Enricher []enricher.Option
}

// App is a running pipeline.
type App struct {
	cfg    Config
	log    *zap.Logger
	ns     *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	ingest *ingest.Server
	stages []namedRunner
}

type namedRunner struct {
	name string
	r    stage.Runner
}

// New starts NATS (embedded or connected), sets up streams and builds the
// stages. Nothing consumes or listens until Run, except that the ingest port
// is bound, so a port in use fails here.
func New(ctx context.Context, cfg Config, log *zap.Logger, opts Options) (_ *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	var extra []nats.Option
	if cfg.EmbeddedNATS() {
		dir, err := cfg.StoreDir()
		if err != nil {
			return nil, err
		}
		a.ns, err = jsx.StartEmbedded(jsx.EmbeddedConfig{StoreDir: dir, Listen: cfg.Embedded.Listen, SyncAlways: cfg.Embedded.SyncAlways})
		if err != nil {
			return nil, err
		}
		extra = append(extra, nats.InProcessServer(a.ns))
		log.Info("embedded NATS JetStream started", zap.String("store_dir", dir), zap.String("client_url", clientURL(a.ns, cfg.Embedded.Listen)))
	}
	a.nc, err = jsx.Connect(ctx, cfg.NATS, "smartmon", log, extra...)
	if err != nil {
		return nil, err
	}
	a.js, err = jetstream.New(a.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	reg := opts.Registry
	if reg == nil {
		reg = service.NewRegistry()
	}
	deps, err := service.NewDeps(ctx, a.js, cfg.NATS, reg, log)
	if err != nil {
		return nil, err
	}

	en, err := enricher.New(cfg.Enricher, deps, opts.Enricher...)
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	ad, err := advisor.New(cfg.Advisor, deps)
	if err != nil {
		return nil, fmt.Errorf("advisor: %w", err)
	}
	var nopts []notifier.Option
	if opts.Console != nil {
		nopts = append(nopts, notifier.WithConsole(opts.Console))
	}
	no, err := notifier.New(cfg.Notifier, deps, nopts...)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	a.stages = []namedRunner{{"enricher", en}, {"advisor", ad}, {"notifier", no}}
	checkers := map[string]stage.Checker{}
	for _, s := range a.stages {
		if c, ok := s.r.(stage.Checker); ok {
			checkers[s.name] = c
		}
	}
	a.ingest, err = ingest.New(cfg.Ingest, deps, ingest.Options{Gatherer: reg, Checkers: checkers})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func clientURL(s *server.Server, listen string) string {
	if listen == "" {
		return "in-process only"
	}
	if addr, ok := s.Addr().(*net.TCPAddr); ok {
		return fmt.Sprintf("nats://%s", addr.String())
	}
	return s.ClientURL()
}

// IngestURL is where Alertmanager should post.
func (a *App) IngestURL() string { return a.ingest.URL() }

// NATSURL is the embedded server's client URL ("" when external).
func (a *App) NATSURL() string {
	if a.ns == nil || a.cfg.Embedded.Listen == "" {
		return ""
	}
	return a.ns.ClientURL()
}

// Run runs until ctx ends, then shuts down in order: the HTTP listener
// stops taking alerts (requests in flight finish storing), the stages
// finish the messages in their hands, the connection drains, and the
// embedded server stops last.
func (a *App) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ingest.Run(gctx) })
	for _, s := range a.stages {
		g.Go(func() error {
			if err := s.r.Run(gctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	a.log.Info("smartmon is running", zap.String("webhook", a.IngestURL()),
		zap.String("try", "smartmon send-test-alert --url "+a.IngestURL()))
	err := g.Wait()
	a.close()
	a.log.Info("stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (a *App) close() {
	if a.nc != nil {
		// Let the drain finish before the server goes.
		_ = jsx.Drain(a.nc, 10*time.Second)
		a.nc = nil
	}
	if a.ns != nil {
		a.ns.Shutdown()
		a.ns.WaitForShutdown()
		a.ns = nil
	}
}
