// Package app is `smartmon run`: all four stages in one process on an
// embedded (or external) NATS JetStream.
package app

import (
	"fmt"
	"path/filepath"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/logging"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/enricher"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/ingest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
)

// Config is the whole config file.
type Config struct {
	// DataDir holds the embedded JetStream store.
	DataDir  string          `yaml:"data_dir"`
	Embedded EmbeddedConfig  `yaml:"embedded"`
	Log      logging.Config  `yaml:"log"`
	NATS     jsx.Config      `yaml:"nats"`
	Ingest   ingest.Config   `yaml:"ingest"`
	Enricher enricher.Config `yaml:"enricher"`
	Advisor  advisor.Config  `yaml:"advisor"`
	Notifier notifier.Config `yaml:"notifier"`
}

// EmbeddedConfig is the embedded NATS server (used when nats.urls is empty).
type EmbeddedConfig struct {
	// Listen lets the CLI (dlq, trace) reach the running server;
	// "" disables the listener.
	Listen     string `yaml:"listen"`
	SyncAlways bool   `yaml:"sync_always"`
}

// EmbeddedNATS reports whether `run` starts its own NATS server.
func (c *Config) EmbeddedNATS() bool { return len(c.NATS.URLs) == 0 }

// Load reads the file (optional) and the environment, fills defaults and
// validates everything, reporting all problems at once.
func Load(path string, env config.Env) (Config, error) {
	var c Config
	if err := config.LoadSections(path, map[string]any{
		"data_dir": &c.DataDir, "embedded": &c.Embedded, "log": &c.Log, "nats": &c.NATS,
		"ingest": &c.Ingest, "enricher": &c.Enricher, "advisor": &c.Advisor, "notifier": &c.Notifier,
	}); err != nil {
		return c, err
	}
	env.String("SMARTMON_DATA_DIR", &c.DataDir)
	env.String("SMARTMON_EMBEDDED_LISTEN", &c.Embedded.Listen)
	env.String("SMARTMON_LOG_LEVEL", &c.Log.Level)
	env.String("SMARTMON_LOG_FORMAT", &c.Log.Format)
	c.Defaults()
	var p config.Problems
	p.Add(c.NATS.ApplyEnv(env))
	p.Add(c.Ingest.ApplyEnv(env))
	p.Add(c.Enricher.ApplyEnv(env))
	p.Add(c.Advisor.ApplyEnv(env))
	p.Add(c.Notifier.ApplyEnv(env))
	if len(p) > 0 {
		return c, p.Err()
	}
	c.link()
	return c, c.Validate()
}

// Defaults fills every section's defaults.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Embedded.Listen == "" {
		c.Embedded.Listen = "127.0.0.1:4222"
	}
	c.Log.Defaults()
	c.NATS.Defaults()
	c.Ingest.Defaults()
	c.Enricher.Defaults()
	c.Advisor.Defaults()
	c.Notifier.Defaults()
}

// link makes settings that two stages must agree on agree: the notifier's
// overdue path waits for exactly the advisor's deadline.
func (c *Config) link() {
	c.Notifier.AdviceDeadline = c.Advisor.Deadline
}

// Validate checks every section.
func (c *Config) Validate() error {
	var p config.Problems
	if c.EmbeddedNATS() && c.DataDir == "" {
		p.Addf("data_dir is required for the embedded NATS server")
	}
	p.Add(c.Log.Validate())
	p.Add(c.NATS.Validate())
	p.Add(c.Ingest.Validate())
	p.Add(c.Enricher.Validate())
	p.Add(c.Advisor.Validate())
	p.Add(c.Notifier.Validate())
	return p.Err()
}

// StoreDir is where the embedded server keeps JetStream data.
func (c *Config) StoreDir() (string, error) {
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return "", fmt.Errorf("data_dir: %w", err)
	}
	return filepath.Join(abs, "jetstream"), nil
}
