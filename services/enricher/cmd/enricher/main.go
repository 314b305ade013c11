// Command enricher gathers the Kubernetes evidence for each notification,
// as a stand-alone service on a NATS cluster.
package main

import (
	"context"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/enricher"
)

func main() {
	var cfg enricher.Config
	service.Exit(service.Spec{
		Name: "enricher", Config: &cfg, OpsListen: ":9096",
		Build: func(_ context.Context, deps stage.Deps) (stage.Runner, error) { return enricher.New(cfg, deps) },
	})
}
