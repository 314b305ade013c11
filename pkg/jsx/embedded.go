package jsx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures the in-process NATS server of `smartmon run`.
type EmbeddedConfig struct {
	// StoreDir holds the JetStream file store. Required: a temp dir would
	// lose every stored alert on restart.
	StoreDir string
	// Listen is host:port for clients (the CLI's dlq and trace commands).
	// Port -1 picks a free port; "" means no listener at all.
	Listen string
	// SyncAlways fsyncs every write. Off by default: the file store already
	// survives a process crash (kill -9) because writes reach the OS before
	// the publish is acknowledged; fsync only adds protection against power
	// loss, at a large cost in throughput.
	SyncAlways bool
	// Logs turns on the server's own log (noisy; for debugging).
	Logs bool
}

// StartEmbedded starts a JetStream-enabled nats-server in this process and
// waits until it accepts connections. NoSigs is set: otherwise the server
// installs its own signal handler and exits the process on SIGTERM before
// the stages have drained.
func StartEmbedded(c EmbeddedConfig) (*server.Server, error) {
	if c.StoreDir == "" {
		return nil, errors.New("embedded nats: store dir is required")
	}
	opts := &server.Options{
		ServerName:             "smartmon-embedded",
		JetStream:              true,
		StoreDir:               c.StoreDir,
		NoSigs:                 true,
		NoLog:                  !c.Logs,
		SyncAlways:             c.SyncAlways,
		DisableJetStreamBanner: true,
	}
	if c.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats listen %q: %w", c.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded nats listen %q: bad port", c.Listen)
		}
		opts.Host, opts.Port = host, p
		if p > 0 {
			// nats-server reports a busy port only in its own log and
			// then never becomes ready; check first and say so plainly.
			var lc net.ListenConfig
			ln, err := lc.Listen(context.Background(), "tcp", c.Listen)
			if err != nil {
				return nil, fmt.Errorf("embedded nats: cannot listen on %s (%w): is another NATS server running? "+
					"choose another address with --nats-listen (embedded.listen), or \"\" for none", c.Listen, err)
			}
			_ = ln.Close()
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if c.Logs {
		s.ConfigureLogger()
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 30s (store dir %s)", c.StoreDir)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: JetStream did not start (is %s writable and not used by another server?)", c.StoreDir)
	}
	return s, nil
}
