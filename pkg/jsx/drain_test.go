package jsx_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
)

// TestDrainWaitsForBufferedMessages: Drain returns only once the messages
// a subscription had buffered were handled and the connection is closed.
func TestDrainWaitsForBufferedMessages(t *testing.T) {
	e := jsxtest.Start(t)
	var handled atomic.Int32
	_, err := e.Conn.Subscribe("drain.test", func(*nats.Msg) {
		time.Sleep(10 * time.Millisecond)
		handled.Add(1)
	})
	require.NoError(t, err)
	for range 20 {
		require.NoError(t, e.Conn.Publish("drain.test", nil))
	}
	require.NoError(t, e.Conn.Flush())

	require.NoError(t, jsx.Drain(e.Conn, 10*time.Second))
	assert.True(t, e.Conn.IsClosed())
	assert.Equal(t, int32(20), handled.Load())
}
