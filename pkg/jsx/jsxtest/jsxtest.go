// Package jsxtest runs a real JetStream server per test: random port, temp
// store dir, no signal handlers, shut down by t.Cleanup.
package jsxtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
)

// Env is a running server with a connection and the streams set up.
type Env struct {
	Server   *server.Server
	Conn     *nats.Conn
	JS       jetstream.JetStream
	StoreDir string
	Config   jsx.Config
}

// Start runs a server on a random port with a fresh store dir.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn runs a server on the given store dir (to test restarts).
func StartIn(t testing.TB, dir string) *Env {
	t.Helper()
	s, err := jsx.StartEmbedded(jsx.EmbeddedConfig{StoreDir: dir, Listen: "127.0.0.1:-1"})
	require.NoError(t, err)
	e := &Env{Server: s, StoreDir: dir}
	e.Config.URLs = []string{s.ClientURL()}
	e.Config.Defaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := jsx.Connect(ctx, e.Config, t.Name(), zap.NewNop())
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, jsx.SetupStreams(ctx, js, e.Config))
	e.Conn, e.JS = nc, js
	t.Cleanup(e.Stop)
	return e
}

// Stop closes the connection and shuts the server down; safe to call twice.
func (e *Env) Stop() {
	if e.Conn != nil {
		e.Conn.Close()
	}
	if e.Server != nil {
		e.Server.Shutdown()
		e.Server.WaitForShutdown()
	}
}

// Messages counts the messages currently stored on a subject filter.
func (e *Env) Messages(t testing.TB, stream, filter string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.JS.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	require.NoError(t, err)
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}
