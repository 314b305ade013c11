// Command ingest is the webhook receiver as a stand-alone service.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/ingest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var cfg ingest.Config
	code := service.Main(ctx, service.Spec{
		Name:   "ingest",
		Config: &cfg,
		Build: func(_ context.Context, deps stage.Deps) (stage.Runner, error) {
			g, _ := deps.Metrics.(prometheus.Gatherer)
			return ingest.New(cfg, deps, ingest.Options{Gatherer: g})
		},
	}, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
