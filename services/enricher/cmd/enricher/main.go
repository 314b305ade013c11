// Command enricher gathers the Kubernetes evidence for each notification,
// as a stand-alone service on a NATS cluster.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/enricher"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var cfg enricher.Config
	code := service.Main(ctx, service.Spec{
		Name:      "enricher",
		Config:    &cfg,
		OpsListen: ":9096",
		Build: func(_ context.Context, deps stage.Deps) (stage.Runner, error) {
			return enricher.New(cfg, deps)
		},
	}, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
