// Command notifier posts notifications to chat, as a stand-alone service on
// a NATS cluster.
package main

import (
	"context"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/stage"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
)

func main() {
	var cfg notifier.Config
	service.Exit(service.Spec{
		Name: "notifier", Config: &cfg, OpsListen: ":9098",
		Build: func(_ context.Context, deps stage.Deps) (stage.Runner, error) { return notifier.New(cfg, deps) },
	})
}
