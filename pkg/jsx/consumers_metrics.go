package jsx

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultScrapeTimeout bounds the JetStream queries of one scrape: a slow or
// partitioned server must not hang /metrics (Prometheus' own scrape timeout
// defaults to 10s).
const DefaultScrapeTimeout = 2 * time.Second

// ConsumerCollector is a prometheus.Collector that asks JetStream at scrape
// time how far behind each durable consumer of ALERTS is and how many
// messages sit in the dead-letter stream. The numbers live in the server
// (shared by every replica of every service), so they are read, not counted
// in-process: a restarted service still reports the backlog it left.
type ConsumerCollector struct {
	js      jetstream.JetStream
	timeout time.Duration

	pending     *prometheus.Desc
	ackPending  *prometheus.Desc
	redelivered *prometheus.Desc
	waiting     *prometheus.Desc
	deadLetters *prometheus.Desc
	streamMsgs  *prometheus.Desc
	up          *prometheus.Desc
}

// NewConsumerCollector builds the collector; timeout <= 0 means
// DefaultScrapeTimeout. Register it on the process's registry.
func NewConsumerCollector(js jetstream.JetStream, timeout time.Duration) *ConsumerCollector {
	if timeout <= 0 {
		timeout = DefaultScrapeTimeout
	}
	cl := []string{"consumer"}
	return &ConsumerCollector{
		js:      js,
		timeout: timeout,
		pending: prometheus.NewDesc("smartmon_consumer_pending_messages",
			"Messages in the ALERTS stream that match a consumer's filter and were not yet delivered to it (the stage's backlog).", cl, nil),
		ackPending: prometheus.NewDesc("smartmon_consumer_ack_pending_messages",
			"Messages delivered to a consumer and not yet acknowledged (being handled, or waiting for a retry).", cl, nil),
		redelivered: prometheus.NewDesc("smartmon_consumer_redelivered_messages",
			"Messages currently outstanding for a consumer that were delivered more than once.", cl, nil),
		waiting: prometheus.NewDesc("smartmon_consumer_waiting_pulls",
			"Pull requests waiting at the server for a consumer (0 means no stage process is pulling).", cl, nil),
		deadLetters: prometheus.NewDesc("smartmon_dead_letters",
			"Messages stored in the dead-letter stream ALERTS_DLQ (inspect with `smartmon dlq list`).", nil, nil),
		streamMsgs: prometheus.NewDesc("smartmon_stream_messages",
			"Messages stored in a JetStream stream of the pipeline.", []string{"stream"}, nil),
		up: prometheus.NewDesc("smartmon_jetstream_info_up",
			"1 if the last scrape could read stream and consumer info from JetStream, 0 if not.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ConsumerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.ackPending, c.redelivered, c.waiting, c.deadLetters, c.streamMsgs, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Errors do not fail the scrape
// (the other metrics stay visible); they show as smartmon_jetstream_info_up 0.
func (c *ConsumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ok := c.collectAlerts(ctx, ch)
	if !c.collectDLQ(ctx, ch) {
		ok = false
	}
	up := 0.0
	if ok {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
}

func (c *ConsumerCollector) collectAlerts(ctx context.Context, ch chan<- prometheus.Metric) bool {
	s, err := c.js.Stream(ctx, StreamAlerts)
	if err != nil {
		return false
	}
	// Stream() just fetched the info: no second round trip.
	if info := s.CachedInfo(); info != nil {
		ch <- prometheus.MustNewConstMetric(c.streamMsgs, prometheus.GaugeValue, float64(info.State.Msgs), StreamAlerts)
	}
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		if ci == nil {
			continue
		}
		name := ci.Name
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(ci.NumPending), name)
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(ci.NumAckPending), name)
		ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(ci.NumRedelivered), name)
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(ci.NumWaiting), name)
	}
	return l.Err() == nil
}

func (c *ConsumerCollector) collectDLQ(ctx context.Context, ch chan<- prometheus.Metric) bool {
	s, err := c.js.Stream(ctx, StreamDLQ)
	if err != nil {
		return false
	}
	info := s.CachedInfo()
	if info == nil {
		return false
	}
	ch <- prometheus.MustNewConstMetric(c.deadLetters, prometheus.GaugeValue, float64(info.State.Msgs))
	ch <- prometheus.MustNewConstMetric(c.streamMsgs, prometheus.GaugeValue, float64(info.State.Msgs), StreamDLQ)
	return true
}
