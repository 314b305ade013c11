// Package stage holds what every pipeline stage is built from, so that a
// service's own main and `smartmon run` construct stages the same way.
package stage

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/trace"
)

// Deps are the shared parts a stage needs. Nothing in it is global: each
// process builds one and hands it to its stages.
type Deps struct {
	JS   jetstream.JetStream
	NATS jsx.Config
	Log  *zap.Logger
	// Metrics is where the stage registers its collectors. Never the
	// global registry: tests build several stages in one process.
	Metrics prometheus.Registerer
	// Observer sees every delivery outcome of every consume loop (trace
	// and metrics). Pass it to jsx.NewLoop; it may be nil.
	Observer jsx.Observer
	// Trace is the notification timeline recorder (it is also part of
	// Observer); stages may record extra steps. It may be nil.
	Trace *trace.Recorder
}

// Runner is a stage: Run blocks until ctx ends, then drains and returns.
type Runner interface {
	Run(ctx context.Context) error
}

// Checker is implemented by stages whose readiness has detail beyond NATS
// (the advisor's model state, for example). The detail is shown on /readyz;
// an error makes the stage not ready.
type Checker interface {
	Check(ctx context.Context) (detail string, err error)
}
