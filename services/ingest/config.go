// Package ingest is the webhook receiver: it takes Alertmanager's
// notifications, validates them, and answers 200 only once JetStream has
// stored them.
package ingest

import (
	"fmt"
	"net"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
)

// Config of the ingest service.
type Config struct {
	// Listen is host:port of the HTTP server.
	Listen string `yaml:"listen"`
	// BodyLimit caps a request body; a larger one gets 413. Alertmanager
	// bodies are a few KiB per alert; max_alerts in the receiver keeps
	// them small.
	BodyLimit config.ByteSize `yaml:"body_limit"`
	// AllowUnauthenticated permits a non-loopback listener without auth,
	// for setups where a NetworkPolicy or mesh guards ingest.
	AllowUnauthenticated bool       `yaml:"allow_unauthenticated"`
	Auth                 AuthConfig `yaml:"auth"`
	// PublishTimeout bounds the wait for JetStream's ack. Alertmanager's
	// own flush timeout is about max(group_interval, 10s).
	PublishTimeout time.Duration `yaml:"publish_timeout"`
}

// AuthConfig is a bearer token, basic auth, or both (either is accepted).
type AuthConfig struct {
	BearerToken       config.Secret `yaml:"bearer_token"`
	BearerTokenFile   string        `yaml:"bearer_token_file"`
	BasicUsername     string        `yaml:"basic_username"`
	BasicPassword     config.Secret `yaml:"basic_password"`
	BasicPasswordFile string        `yaml:"basic_password_file"`
}

// Enabled reports whether any credential is configured.
func (a AuthConfig) Enabled() bool { return a.BearerToken.Set() || a.BasicUsername != "" }

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9095"
	}
	if c.BodyLimit == 0 {
		c.BodyLimit = 4 << 20
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
}

// ApplyEnv reads SMARTMON_INGEST_LISTEN, SMARTMON_INGEST_TOKEN(_FILE),
// SMARTMON_INGEST_BASIC_USER and SMARTMON_INGEST_BASIC_PASSWORD(_FILE).
func (c *Config) ApplyEnv(env config.Env) error {
	env.String("SMARTMON_INGEST_LISTEN", &c.Listen)
	env.String("SMARTMON_INGEST_BASIC_USER", &c.Auth.BasicUsername)
	if err := env.Secret("SMARTMON_INGEST_TOKEN", &c.Auth.BearerToken, &c.Auth.BearerTokenFile); err != nil {
		return err
	}
	return env.Secret("SMARTMON_INGEST_BASIC_PASSWORD", &c.Auth.BasicPassword, &c.Auth.BasicPasswordFile)
}

// Validate checks the values, including the rule that a listener reachable
// from other hosts needs auth.
func (c *Config) Validate() error {
	var p config.Problems
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		p.Addf("ingest.listen %q: want host:port", c.Listen)
	}
	if c.BodyLimit < 1024 {
		p.Addf("ingest.body_limit %d is below 1KiB", c.BodyLimit)
	}
	if c.PublishTimeout <= 0 {
		p.Addf("ingest.publish_timeout must be positive")
	}
	if (c.Auth.BasicUsername == "") != !c.Auth.BasicPassword.Set() {
		p.Addf("ingest.auth: basic_username and basic_password go together")
	}
	if err == nil && !isLoopback(host) && !c.Auth.Enabled() && !c.AllowUnauthenticated {
		p.Addf("ingest listens on %s, reachable from other hosts, without auth: set SMARTMON_INGEST_TOKEN "+
			"(or ingest.auth.bearer_token_file / basic auth), or set ingest.allow_unauthenticated: true "+
			"if a network policy protects it", c.Listen)
	}
	return p.Err()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes the config without secrets.
func (a AuthConfig) String() string {
	switch {
	case a.BearerToken.Set() && a.BasicUsername != "":
		return "bearer or basic"
	case a.BearerToken.Set():
		return "bearer"
	case a.BasicUsername != "":
		return fmt.Sprintf("basic (user %s)", a.BasicUsername)
	default:
		return "none"
	}
}
