package jsxtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
)

// Cluster is n JetStream servers clustered over loopback routes, each with
// its own temp store dir, as a NATS cluster in production would be (the
// streams of cluster mode use 3 replicas).
type Cluster struct {
	Servers []*server.Server
	// Config reaches every server (all client URLs) with Replicas = n.
	Config jsx.Config
}

// StartCluster starts n servers named n0..n(n-1), waits until they elected a
// JetStream meta leader, and shuts them all down at cleanup.
//
// The route ports are picked free and then handed to the servers, so
// another process can take one in between (CI runs many test binaries at
// once); a server that cannot listen on its route port never becomes
// ready. Such a start is thrown away and tried again on new ports.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var last error
	for range 3 {
		c, err := startCluster(t, n)
		if err == nil {
			t.Cleanup(c.Stop)
			return c
		}
		last = err
		t.Logf("cluster start failed, trying again on new ports: %v", err)
	}
	require.NoError(t, last, "start a %d-server cluster", n)
	return nil
}

func startCluster(t testing.TB, n int) (*Cluster, error) {
	t.Helper()
	routePorts := make([]int, n)
	for i := range routePorts {
		routePorts[i] = freePort(t)
	}
	c := &Cluster{}
	for i := range n {
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		opts := &server.Options{
			ServerName:             fmt.Sprintf("n%d", i),
			Host:                   "127.0.0.1",
			Port:                   -1,
			JetStream:              true,
			StoreDir:               t.TempDir(),
			NoSigs:                 true,
			NoLog:                  true,
			DisableJetStreamBanner: true,
			Cluster:                server.ClusterOpts{Name: "smartmon-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:                 server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("server n%d: %w", i, err)
		}
		s.Start()
		c.Servers = append(c.Servers, s)
	}
	for _, s := range c.Servers {
		if !s.ReadyForConnections(15 * time.Second) {
			c.Stop()
			return nil, fmt.Errorf("server %s not ready (route port taken?)", s.Name())
		}
		c.Config.URLs = append(c.Config.URLs, s.ClientURL())
	}
	c.Config.Replicas = n
	c.Config.Defaults()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, s := range c.Servers {
			if s.JetStreamIsLeader() {
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, errors.New("no JetStream meta leader elected")
		}
		poll := time.NewTimer(20 * time.Millisecond)
		<-poll.C
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// Connect dials the cluster (every URL, reconnecting forever) and sets the
// streams up with Replicas = n. The connection is closed at cleanup.
func (c *Cluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := jsx.Connect(ctx, c.Config, t.Name(), zap.NewNop(), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	// Right after the meta leader is elected the peers may not all be
	// known yet; an R3 stream needs them.
	// EventuallyWithT reports the last attempt's error when it gives up.
	// Each attempt has its own short timeout: a request the cluster does
	// not answer while it settles must not use up the whole wait.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer acancel()
		assert.NoError(ct, jsx.SetupStreams(actx, js, c.Config), "set up streams")
	}, 60*time.Second, 100*time.Millisecond)
	return nc, js
}

// Server returns the server with that name, or nil.
func (c *Cluster) Server(name string) *server.Server {
	for _, s := range c.Servers {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// Kill shuts one server down at once (an in-process server cannot be sent
// SIGKILL; Shutdown drops its clients and routes without a lame-duck phase).
func (c *Cluster) Kill(name string) {
	if s := c.Server(name); s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Stop shuts every server down; safe to call twice.
func (c *Cluster) Stop() {
	for _, s := range c.Servers {
		s.Shutdown()
	}
	for _, s := range c.Servers {
		s.WaitForShutdown()
	}
}
