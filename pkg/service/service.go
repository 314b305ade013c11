// Package service is the shared main of the stand-alone service binaries
// (ingest, enricher, advisor, notifier) as they run in a cluster: load the
// config file's sections plus the environment, connect to NATS, set the
// streams up, serve /healthz, /readyz and /metrics, run the stage, and on
// SIGTERM drain in order.
package service

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/logging"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/ops"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/trace"
)

// Configurable is a service's own config section.
type Configurable interface {
	Defaults()
	ApplyEnv(config.Env) error
	Validate() error
}

// Spec describes a stand-alone service.
type Spec struct {
	// Name of the binary and of the config section.
	Name string
	// Config is a pointer to the service's config section.
	Config Configurable
	// OpsListen is the default address of /healthz, /readyz and /metrics;
	// empty when the stage serves them itself (ingest).
	OpsListen string
	// Build constructs the stage once NATS is ready.
	Build func(ctx context.Context, deps stage.Deps) (stage.Runner, error)
}

// Common are the sections every service reads.
type Common struct {
	Log  logging.Config
	NATS jsx.Config
}

// Load reads the config file (if any) and the environment into the common
// sections and the service's own.
func Load(path, section string, own Configurable, env config.Env) (Common, error) {
	var c Common
	if err := config.LoadSections(path, map[string]any{"log": &c.Log, "nats": &c.NATS, section: own}); err != nil {
		return c, err
	}
	env.String("SMARTMON_LOG_LEVEL", &c.Log.Level)
	env.String("SMARTMON_LOG_FORMAT", &c.Log.Format)
	c.Log.Defaults()
	c.NATS.Defaults()
	own.Defaults()
	if err := c.NATS.ApplyEnv(env); err != nil {
		return c, err
	}
	if err := own.ApplyEnv(env); err != nil {
		return c, err
	}
	var p config.Problems
	p.Add(c.Log.Validate())
	p.Add(c.NATS.Validate())
	p.Add(own.Validate())
	return c, p.Err()
}

// Exit is a stand-alone service's whole main: it runs Main with the
// process's arguments until SIGINT or SIGTERM, then exits with its code.
func Exit(spec Spec) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, spec, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// Main parses flags and runs the service until ctx ends. It returns the exit
// code.
func Main(ctx context.Context, spec Spec, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(spec.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("SMARTMON_CONFIG"), "YAML config file (env SMARTMON_CONFIG)")
	opsListen := fs.String("ops-listen", envOr("SMARTMON_OPS_LISTEN", spec.OpsListen), "address of /healthz, /readyz and /metrics (env SMARTMON_OPS_LISTEN)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	common, err := Load(*cfgPath, spec.Name, spec.Config, config.OSEnv())
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return 2
	}
	log, err := logging.New(common.Log)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	if err := run(ctx, spec, common, *opsListen, log); err != nil {
		log.Error("exiting", zap.Error(err))
		return 1
	}
	return 0
}

// NewRegistry is a metrics registry with the Go runtime and process
// collectors, as every binary serves it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewDeps sets up what every stage shares once NATS is connected: the
// streams, the consumer and loop metrics on reg, and the trace recorder
// (which also observes every consume loop). `smartmon run` and each
// stand-alone service build their stages from it.
func NewDeps(ctx context.Context, js jetstream.JetStream, c jsx.Config, reg *prometheus.Registry, log *zap.Logger) (stage.Deps, error) {
	if err := jsx.SetupStreams(ctx, js, c); err != nil {
		return stage.Deps{}, err
	}
	reg.MustRegister(jsx.NewConsumerCollector(js, 0))
	tr, err := trace.Open(ctx, js, c.Replicas, log)
	if err != nil {
		return stage.Deps{}, err
	}
	return stage.Deps{
		JS: js, NATS: c, Log: log, Metrics: reg,
		Observer: jsx.Observers{jsx.NewLoopMetrics(reg), tr}, Trace: tr,
	}, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, spec Spec, common Common, opsListen string, log *zap.Logger) error {
	log = log.With(zap.String("service", spec.Name))
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := jsx.Connect(cctx, common.NATS, "smartmon-"+spec.Name, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	reg := NewRegistry()
	deps, err := NewDeps(cctx, js, common.NATS, reg, log)
	if err != nil {
		return err
	}
	st, err := spec.Build(ctx, deps)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if opsListen != "" {
		checkers := map[string]stage.Checker{}
		if c, ok := st.(stage.Checker); ok {
			checkers[spec.Name] = c
		}
		h := &ops.Health{JS: js, Checkers: checkers}
		srv, err := ops.Listen(opsListen, h.Mux(reg))
		if err != nil {
			return err
		}
		log.Info("ops endpoints listening", zap.Stringer("addr", srv.Addr()))
		g.Go(func() error { return srv.Serve(gctx) })
	}
	g.Go(func() error { return st.Run(gctx) })
	err = g.Wait()
	// Publishes the stage made are acked synchronously; Drain flushes
	// anything else before the connection closes.
	if derr := jsx.Drain(nc, 10*time.Second); derr != nil {
		log.Warn("nats drain", zap.Error(derr))
	}
	return err
}
