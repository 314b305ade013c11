package advisor

import "github.com/prometheus/client_golang/prometheus"

// metrics are the advisor's collectors, registered on deps.Metrics.
type metrics struct {
	advice       *prometheus.CounterVec
	calls        *prometheus.CounterVec
	callDuration *prometheus.HistogramVec
	inflight     prometheus.Gauge
	waiting      prometheus.GaugeFunc
	cache        *prometheus.CounterVec
	breaker      prometheus.Gauge
	promptTokens prometheus.Histogram
	late         prometheus.Counter
	modelUp      prometheus.Gauge
	modelPresent prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, waiting func() float64) *metrics {
	m := &metrics{
		advice: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartmon_advisor_advice_total",
			Help: "Notifications passed on by the advisor, by advice status (ok, unavailable, skipped) and source (model, shared, cache, none).",
		}, []string{"status", "source"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartmon_advisor_model_calls_total",
			Help: "Calls to the model server, by outcome (ok or an error kind).",
		}, []string{"backend", "outcome"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smartmon_advisor_model_call_duration_seconds",
			Help:    "Duration of calls to the model server.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120, 300},
		}, []string{"backend"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartmon_advisor_model_calls_in_flight",
			Help: "Model calls running now (bounded by advisor.concurrency).",
		}),
		waiting: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "smartmon_advisor_model_calls_waiting",
			Help: "Model calls waiting for a free slot.",
		}, waiting),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartmon_advisor_cache_lookups_total",
			Help: "Advice cache lookups, by result (hit, miss, error).",
		}, []string{"result"}),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartmon_advisor_breaker_state",
			Help: "Circuit breaker towards the model: 0 closed, 1 half-open, 2 open.",
		}),
		promptTokens: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartmon_advisor_prompt_tokens",
			Help:    "Estimated tokens of the prompts sent to the model.",
			Buckets: []float64{256, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192, 16384},
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmon_advisor_late_advice_total",
			Help: "Advice published as a follow-up because it arrived after the deadline.",
		}),
		modelUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartmon_advisor_model_server_up",
			Help: "1 when the model server answered the last state check.",
		}),
		modelPresent: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartmon_advisor_model_present",
			Help: "1 when the configured model is present on the server.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.advice, m.calls, m.callDuration, m.inflight, m.waiting, m.cache, m.breaker,
			m.promptTokens, m.late, m.modelUp, m.modelPresent)
	}
	return m
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
