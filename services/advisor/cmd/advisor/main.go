// Command advisor asks the local model for the likely cause and next steps,
// as a stand-alone service on a NATS cluster.
package main

import (
	"context"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor"
)

func main() {
	var cfg advisor.Config
	service.Exit(service.Spec{
		Name: "advisor", Config: &cfg, OpsListen: ":9097",
		Build: func(_ context.Context, deps stage.Deps) (stage.Runner, error) { return advisor.New(cfg, deps) },
	})
}
