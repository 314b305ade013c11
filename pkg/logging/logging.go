// Package logging builds the zap logger every binary uses.
package logging

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config selects the log level and format.
type Config struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is "console" (readable, the local default) or "json" (for log
	// collectors in a cluster).
	Format string `yaml:"format"`
}

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if c.Level == "" {
		c.Level = "info"
	}
	if c.Format == "" {
		c.Format = "console"
	}
}

// Validate reports a level or format zap would not understand.
func (c *Config) Validate() error {
	if _, err := zapcore.ParseLevel(c.Level); err != nil {
		return fmt.Errorf("log.level %q: want debug, info, warn or error", c.Level)
	}
	switch c.Format {
	case "console", "json":
	default:
		return fmt.Errorf("log.format %q: want console or json", c.Format)
	}
	return nil
}

// New builds a logger writing to stderr, so stdout stays free for the
// console sink.
func New(c Config) (*zap.Logger, error) {
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	lvl, _ := zapcore.ParseLevel(c.Level)
	var zc zap.Config
	if strings.EqualFold(c.Format, "json") {
		zc = zap.NewProductionConfig()
	} else {
		zc = zap.NewDevelopmentConfig()
		zc.Development = false
		zc.DisableStacktrace = true
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	l, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return l, nil
}
