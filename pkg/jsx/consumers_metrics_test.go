package jsx_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
)

// gauges gathers reg and returns every gauge as "name" or "name/label".
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				key += "/" + lp.GetValue()
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestConsumerCollectorReportsBacklogAndDeadLetters(t *testing.T) {
	e := jsxtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := jsx.EnsureConsumer(ctx, e.JS, jsx.ConsumerEnricher(), 1)
	require.NoError(t, err)
	_, err = jsx.EnsureConsumer(ctx, e.JS, jsx.ConsumerAdvisor(), 1)
	require.NoError(t, err)
	for _, fp := range []string{"a", "b", "c"} {
		_, err := jsx.PublishEnvelope(ctx, e.JS, jsx.SubjectReceived, testEnvelope(t, fp), "test")
		require.NoError(t, err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(jsx.NewConsumerCollector(e.JS, time.Second))
	g := gauges(t, reg)
	assert.InDelta(t, 3, g["smartmon_consumer_pending_messages/enricher"], 0)
	assert.InDelta(t, 0, g["smartmon_consumer_pending_messages/advisor"], 0)
	assert.InDelta(t, 0, g["smartmon_consumer_ack_pending_messages/enricher"], 0)
	assert.InDelta(t, 0, g["smartmon_dead_letters"], 0)
	assert.InDelta(t, 3, g["smartmon_stream_messages/ALERTS"], 0)
	assert.InDelta(t, 1, g["smartmon_jetstream_info_up"], 0)

	// Take one message and hold it: pending 2, ack pending 1.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var held jetstream.Msg
	for m := range batch.Messages() {
		held = m
	}
	require.NotNil(t, held)
	g = gauges(t, reg)
	assert.InDelta(t, 2, g["smartmon_consumer_pending_messages/enricher"], 0)
	assert.InDelta(t, 1, g["smartmon_consumer_ack_pending_messages/enricher"], 0)

	// A dead letter shows up in smartmon_dead_letters.
	require.NoError(t, jsx.PublishDeadLetter(ctx, e.JS, jsx.DeadLetter{Stage: "enricher", Subject: held.Subject(), Error: "boom", Attempts: 1, At: time.Now(), StreamSeq: 1, Data: held.Data()}))
	require.NoError(t, held.Term())
	require.Eventually(t, func() bool {
		g := gauges(t, reg)
		return g["smartmon_dead_letters"] == 1 && g["smartmon_consumer_ack_pending_messages/enricher"] == 0
	}, 5*time.Second, 20*time.Millisecond)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems)
}

func TestConsumerCollectorDoesNotHangWithoutServer(t *testing.T) {
	e := jsxtest.Start(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(jsx.NewConsumerCollector(e.JS, 300*time.Millisecond))
	e.Server.Shutdown()
	e.Server.WaitForShutdown()

	start := time.Now()
	g := gauges(t, reg)
	assert.Less(t, time.Since(start), 3*time.Second, "a scrape must not wait longer than its timeout")
	assert.InDelta(t, 0, g["smartmon_jetstream_info_up"], 0)
	_, has := g["smartmon_dead_letters"]
	assert.False(t, has)
}
