package jsx

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LoopMetrics is an Observer that counts deliveries by stage and outcome and
// measures handling time.
type LoopMetrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewLoopMetrics registers the consume-loop metrics on reg.
func NewLoopMetrics(reg prometheus.Registerer) *LoopMetrics {
	m := &LoopMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartmon_stage_deliveries_total",
			Help: "Messages handled by a stage's consume loop, by outcome (ack, retry, dead_letter).",
		}, []string{"stage", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smartmon_stage_handle_duration_seconds",
			Help:    "Time a stage spent on one delivery.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.handled, m.duration)
	}
	return m
}

// Handled implements Observer.
func (m *LoopMetrics) Handled(stage string, _ *Delivery, o Outcome, d time.Duration, _ error) {
	m.handled.WithLabelValues(stage, string(o)).Inc()
	m.duration.WithLabelValues(stage).Observe(d.Seconds())
}

// Observers fans one outcome out to several observers.
type Observers []Observer

// Handled implements Observer.
func (os Observers) Handled(stage string, d *Delivery, o Outcome, dur time.Duration, err error) {
	for _, x := range os {
		if x != nil {
			x.Handled(stage, d, o, dur, err)
		}
	}
}
