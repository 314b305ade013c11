// Package jsx keeps everything the services do with NATS JetStream in one
// place: connecting, the embedded server, streams, consumers, KV buckets,
// publishing and the consume loop that turns a handler's error into Ack,
// NakWithDelay or dead letter + Term.
package jsx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
)

// Config is how a service reaches NATS and how the streams are shaped.
type Config struct {
	// URLs of the NATS servers. Empty means: use the embedded server
	// (smartmon run) or fail (stand-alone services).
	URLs []string `yaml:"urls"`

	User         string        `yaml:"user"`
	Password     config.Secret `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	Token        config.Secret `yaml:"token"`
	TokenFile    string        `yaml:"token_file"`
	NKeyFile     string        `yaml:"nkey_file"`
	CredsFile    string        `yaml:"creds_file"`
	TLS          TLSConfig     `yaml:"tls"`

	// Replicas of every stream and bucket: 1 for a single server, 3 on a
	// NATS cluster.
	Replicas int `yaml:"replicas"`
	// MaxAge of stored alerts. Limits retention keeps processed messages
	// until then, which is what lets the duplicate table survive restarts.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes bounds the ALERTS stream; when it is full, ingest answers 503
	// and Alertmanager retries later (DiscardNew).
	MaxBytes int64 `yaml:"max_bytes"`
	// DuplicateWindow is how long a notification id is remembered.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
}

// TLSConfig for the NATS connection.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = time.Hour
	}
}

// ApplyEnv reads SMARTMON_NATS_URL (comma-separated) and the credentials.
func (c *Config) ApplyEnv(env config.Env) error {
	if v, ok := env("SMARTMON_NATS_URL"); ok && v != "" {
		c.URLs = nil
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.URLs = append(c.URLs, u)
			}
		}
	}
	env.String("SMARTMON_NATS_USER", &c.User)
	env.String("SMARTMON_NATS_CREDS_FILE", &c.CredsFile)
	env.String("SMARTMON_NATS_NKEY_FILE", &c.NKeyFile)
	if err := env.Secret("SMARTMON_NATS_PASSWORD", &c.Password, &c.PasswordFile); err != nil {
		return err
	}
	return env.Secret("SMARTMON_NATS_TOKEN", &c.Token, &c.TokenFile)
}

// Validate checks the values.
func (c *Config) Validate() error {
	var p config.Problems
	if c.Replicas < 1 || c.Replicas > 5 {
		p.Addf("nats.replicas is %d, want 1..5", c.Replicas)
	}
	if c.MaxAge < time.Minute {
		p.Addf("nats.max_age %s is too short", c.MaxAge)
	}
	if c.DuplicateWindow <= 0 || c.DuplicateWindow > c.MaxAge {
		p.Addf("nats.duplicate_window %s must be positive and at most max_age %s", c.DuplicateWindow, c.MaxAge)
	}
	if c.MaxBytes < 1<<20 {
		p.Addf("nats.max_bytes %d is below 1 MiB", c.MaxBytes)
	}
	n := 0
	for _, set := range []bool{c.User != "" || c.Password.Set(), c.Token.Set(), c.NKeyFile != "", c.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		p.Addf("nats: set only one of user/password, token, nkey_file, creds_file")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.Addf("nats.tls: cert_file and key_file go together")
	}
	return p.Err()
}

// Connect dials NATS with the configured credentials. It reconnects forever:
// a NATS restart must not end a service, the consume loops resume.
func Connect(ctx context.Context, c Config, name string, log *zap.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", zap.String("server", nc.ConnectedServerName()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats async error", zap.Error(err))
		}),
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password.Reveal()))
	case c.Token.Set():
		opts = append(opts, nats.Token(c.Token.Reveal()))
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.TLS.CAFile))
	}
	if c.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.TLS.CertFile, c.TLS.KeyFile))
	}
	opts = append(opts, extra...)
	if len(c.URLs) == 0 && len(extra) == 0 {
		return nil, errors.New("nats: no server URL configured (set nats.urls or SMARTMON_NATS_URL)")
	}
	url := strings.Join(c.URLs, ",")
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect to nats: %w", r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect to nats: %w", ctx.Err())
	}
}

// Drain drains nc (stops its subscriptions, flushes what is buffered) and
// waits until it is closed, at most timeout, then closes it anyway. Drain
// of nats.go alone returns at once: a Close right after it cuts the drain
// short.
func Drain(nc *nats.Conn, timeout time.Duration) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("nats drain: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-closed:
		return nil
	case <-t.C:
		nc.Close()
		return fmt.Errorf("nats drain: not done after %s", timeout)
	}
}
