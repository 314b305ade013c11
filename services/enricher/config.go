// Package enricher is the pipeline stage that gathers the Kubernetes
// evidence an on-call engineer would collect by hand (describe, events,
// logs --previous, rollout history, node health) for each notification,
// redacts it, and passes the alert on. It never holds an alert back: errors
// are recorded as data, and without cluster access the stage still runs and
// says why.
package enricher

import (
	"fmt"
	"strconv"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact"
)

// Config of the enricher stage (section `enricher:` of the config file).
type Config struct {
	// Kubeconfig is the kubeconfig file to use outside a cluster; empty
	// means $KUBECONFIG, then ~/.kube/config. Inside a pod the in-cluster
	// service account is used first.
	Kubeconfig string `yaml:"kubeconfig"`
	// Context selects a kubeconfig context (default: the current one).
	Context string `yaml:"context"`
	// Disabled turns cluster access off on purpose (the stage then records
	// "no cluster access: disabled by configuration").
	Disabled bool `yaml:"disabled"`

	// QPS and Burst are the client-side rate limit on API requests, so an
	// alert storm cannot hammer the API server.
	QPS   float32 `yaml:"qps"`
	Burst int     `yaml:"burst"`
	// CallTimeout bounds one API request; NotificationTimeout bounds all
	// the gathering for one notification.
	CallTimeout         time.Duration `yaml:"call_timeout"`
	NotificationTimeout time.Duration `yaml:"notification_timeout"`

	// LogLines and LogBytes cap each container log (current and previous).
	LogLines int             `yaml:"log_lines"`
	LogBytes config.ByteSize `yaml:"log_bytes"`
	// Events is how many deduplicated events are kept per object.
	Events int `yaml:"events"`
	// PodsInDetail is how many pods of one workload are gathered in detail;
	// the rest are listed as "+N more".
	PodsInDetail int `yaml:"pods_in_detail"`
	// MaxPods caps how many pods of one notification are looked at at all.
	MaxPods int `yaml:"max_pods"`
	// Budget caps the evidence per notification (text plus structured
	// fields); logs are trimmed first, then events, then extra pods.
	Budget config.ByteSize `yaml:"budget"`
	// Env includes containers' literal environment values (redacted).
	Env bool `yaml:"env"`
	// SkipNodes leaves node and StorageClass lookups out, for namespaced
	// RBAC (a Role cannot grant cluster-scoped resources; without this
	// every notification would record a forbidden lookup).
	SkipNodes bool `yaml:"skip_nodes"`

	// Concurrency is how many notifications are enriched at once.
	Concurrency int `yaml:"concurrency"`
	// MaxAttempts is how often a notification is retried after transient
	// API errors before it is passed on partially enriched.
	MaxAttempts int `yaml:"max_attempts"`
	// GiveUpAfter bounds the retries in time: a notification received
	// longer ago than this is passed on partially enriched instead of
	// retried, so an unreachable API server delays chat by at most this.
	GiveUpAfter time.Duration `yaml:"give_up_after"`

	Redact redact.Config `yaml:"redact"`
}

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if c.QPS == 0 {
		c.QPS = 20
	}
	if c.Burst == 0 {
		c.Burst = 40
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 5 * time.Second
	}
	if c.NotificationTimeout == 0 {
		c.NotificationTimeout = 20 * time.Second
	}
	if c.LogLines == 0 {
		c.LogLines = 40
	}
	if c.LogBytes == 0 {
		c.LogBytes = 4 << 10
	}
	if c.Events == 0 {
		c.Events = 10
	}
	if c.PodsInDetail == 0 {
		c.PodsInDetail = 3
	}
	if c.MaxPods == 0 {
		c.MaxPods = 500
	}
	if c.Budget == 0 {
		c.Budget = 32 << 10
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 4
	}
	if c.GiveUpAfter == 0 {
		c.GiveUpAfter = 30 * time.Second
	}
}

// ApplyEnv reads KUBECONFIG, SMARTMON_KUBE_CONTEXT and
// SMARTMON_ENRICHER_DISABLED.
func (c *Config) ApplyEnv(env config.Env) error {
	if c.Kubeconfig == "" {
		env.String("KUBECONFIG", &c.Kubeconfig)
	}
	env.String("SMARTMON_KUBE_CONTEXT", &c.Context)
	if v, ok := env("SMARTMON_ENRICHER_DISABLED"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("SMARTMON_ENRICHER_DISABLED=%q: want true or false", v)
		}
		c.Disabled = b
	}
	return nil
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var p config.Problems
	if c.QPS < 0 || c.Burst < 0 {
		p.Addf("enricher.qps and enricher.burst must not be negative")
	}
	if c.CallTimeout < 0 || c.NotificationTimeout < 0 {
		p.Addf("enricher timeouts must not be negative")
	}
	if c.CallTimeout > c.NotificationTimeout && c.NotificationTimeout > 0 {
		p.Addf("enricher.call_timeout (%s) is longer than enricher.notification_timeout (%s)", c.CallTimeout, c.NotificationTimeout)
	}
	if c.LogLines < 0 || c.LogBytes < 0 || c.Events < 0 || c.PodsInDetail < 0 || c.MaxPods < 0 {
		p.Addf("enricher limits (log_lines, log_bytes, events, pods_in_detail, max_pods) must not be negative")
	}
	if c.Budget > 0 && c.Budget < 2048 {
		p.Addf("enricher.budget %d is too small to say anything useful (minimum 2KiB)", c.Budget)
	}
	if c.GiveUpAfter < 0 {
		p.Addf("enricher.give_up_after must not be negative")
	}
	if c.Concurrency < 0 || c.MaxAttempts < 0 {
		p.Addf("enricher.concurrency and enricher.max_attempts must not be negative")
	}
	p.Add(c.Redact.Validate())
	return p.Err()
}
