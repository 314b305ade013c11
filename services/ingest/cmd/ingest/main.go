// Command ingest is the webhook receiver as a stand-alone service.
package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/ingest"
)

func main() {
	var cfg ingest.Config
	service.Exit(service.Spec{
		Name: "ingest", Config: &cfg,
		Build: func(_ context.Context, deps stage.Deps) (stage.Runner, error) {
			g, _ := deps.Metrics.(prometheus.Gatherer)
			return ingest.New(cfg, deps, ingest.Options{Gatherer: g})
		},
	})
}
