package notifier

import (
	"fmt"
	"net/url"
	"regexp"
	"time"

	amlabels "github.com/prometheus/alertmanager/pkg/labels"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
)

// Sink types.
const (
	TypeDiscord = "discord"
	TypeSlack   = "slack"
	TypeTeams   = "teams"
	TypeWebhook = "webhook"
	// ConsoleSink is the name of the built-in console sink.
	ConsoleSink = "console"
)

// Config is the notifier's section of the config file.
type Config struct {
	// Console prints every notification on stdout (default true).
	Console *bool `yaml:"console"`
	// AdviceDeadline is the advisor's deadline, counted from receipt; an
	// alert with no advice by AdviceDeadline+OverdueGrace is posted
	// without it (the advisor may be down).
	AdviceDeadline time.Duration `yaml:"advice_deadline"`
	OverdueGrace   time.Duration `yaml:"overdue_grace"`
	Sinks          []SinkConfig  `yaml:"sinks"`
	// Routes pick sinks by labels; the first match wins unless it says
	// continue. No match: DefaultRoute.
	Routes       []RouteConfig `yaml:"routes"`
	DefaultRoute RouteConfig   `yaml:"default_route"`

	// Concurrency of each consumer (default 4).
	Concurrency int `yaml:"concurrency"`
	// MaxAttempts before a notification is dead-lettered (default 60:
	// with the backoff capped at a minute, about an hour of outage).
	MaxAttempts  int           `yaml:"max_attempts"`
	RetryInitial time.Duration `yaml:"retry_initial"`
	RetryMax     time.Duration `yaml:"retry_max"`
	// HTTPTimeout bounds one request to a platform.
	HTTPTimeout time.Duration `yaml:"http_timeout"`
	// MaxWait is the longest a worker waits in place for a pacing slot;
	// longer waits go back to JetStream.
	MaxWait time.Duration `yaml:"max_wait"`
	// ClaimTTL is how long "posted" claims are remembered (default 7d).
	ClaimTTL time.Duration `yaml:"claim_ttl"`
	// ClaimLease is how long an unfinished claim blocks others; after it
	// the previous attempt is presumed crashed and the post is retried.
	ClaimLease time.Duration `yaml:"claim_lease"`
}

// SinkConfig is one chat or webhook destination.
type SinkConfig struct {
	Name    string        `yaml:"name"`
	Type    string        `yaml:"type"`
	URL     config.Secret `yaml:"url"`
	URLFile string        `yaml:"url_file"`
	// Secret signs webhook bodies (HMAC-SHA256); webhook type only.
	Secret     config.Secret `yaml:"secret"`
	SecretFile string        `yaml:"secret_file"`
	// Pace is the minimum spacing between requests (defaults: Slack 1s,
	// Teams 250ms, Discord and webhook 0: headers and answers pace them).
	Pace time.Duration `yaml:"pace"`
}

// RouteConfig selects sinks by Alertmanager matchers.
type RouteConfig struct {
	// Matchers use Alertmanager's syntax, e.g. `severity="critical"` or
	// `namespace=~"prod-.*"`; all must match.
	Matchers []string `yaml:"matchers"`
	Sinks    []string `yaml:"sinks"`
	Continue bool     `yaml:"continue"`
	// SendResolved (default true) posts resolutions too.
	SendResolved *bool `yaml:"send_resolved"`
}

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if c.Console == nil {
		t := true
		c.Console = &t
	}
	if c.AdviceDeadline == 0 {
		c.AdviceDeadline = 45 * time.Second
	}
	if c.OverdueGrace == 0 {
		c.OverdueGrace = 5 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 60
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = time.Minute
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = 15 * time.Second
	}
	if c.MaxWait == 0 {
		c.MaxWait = 10 * time.Second
	}
	if c.ClaimTTL == 0 {
		c.ClaimTTL = 7 * 24 * time.Hour
	}
	if c.ClaimLease == 0 {
		// Longer than one post can take (its timeout plus the longest
		// wait for a pacing slot), so a live delivery is never taken
		// over; short enough that a crash delays the posts it had in
		// flight by less than a minute.
		c.ClaimLease = 2 * (c.HTTPTimeout + c.MaxWait)
	}
}

// ConsoleEnabled reports whether the console sink is on.
func (c *Config) ConsoleEnabled() bool { return c.Console == nil || *c.Console }

// envSinks are the quick-setup variables: each adds (or re-points) a sink
// named like its type.
var envSinks = []struct{ key, typ string }{
	{"SMARTMON_WEBHOOK_URL", TypeWebhook},
	{"SMARTMON_DISCORD_WEBHOOK_URL", TypeDiscord},
	{"SMARTMON_SLACK_WEBHOOK_URL", TypeSlack},
	{"SMARTMON_TEAMS_WEBHOOK_URL", TypeTeams},
}

// ApplyEnv adds the sinks named by SMARTMON_*_WEBHOOK_URL(_FILE), reads
// SMARTMON_WEBHOOK_SECRET(_FILE) and SMARTMON_ADVICE_DEADLINE, and loads
// url_file / secret_file of configured sinks.
func (c *Config) ApplyEnv(env config.Env) error {
	for _, e := range envSinks {
		var u config.Secret
		if err := env.Secret(e.key, &u, nil); err != nil {
			return err
		}
		if !u.Set() {
			continue
		}
		found := false
		for i := range c.Sinks {
			if c.Sinks[i].Name == e.typ {
				c.Sinks[i].URL, c.Sinks[i].URLFile, found = u, "", true
			}
		}
		if !found {
			c.Sinks = append(c.Sinks, SinkConfig{Name: e.typ, Type: e.typ, URL: u})
		}
	}
	var secret config.Secret
	if err := env.Secret("SMARTMON_WEBHOOK_SECRET", &secret, nil); err != nil {
		return err
	}
	if secret.Set() {
		for i := range c.Sinks {
			if c.Sinks[i].Type == TypeWebhook && !c.Sinks[i].Secret.Set() && c.Sinks[i].SecretFile == "" {
				c.Sinks[i].Secret = secret
			}
		}
	}
	if v, ok := env("SMARTMON_ADVICE_DEADLINE"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("SMARTMON_ADVICE_DEADLINE %q: %w", v, err)
		}
		c.AdviceDeadline = d
	}
	return c.loadFiles()
}

func (c *Config) loadFiles() error {
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if !s.URL.Set() && s.URLFile != "" {
			v, err := config.ReadSecretFile(s.URLFile)
			if err != nil {
				return fmt.Errorf("notifier.sinks[%d] (%s) url_file: %w", i, s.Name, err)
			}
			s.URL = v
		}
		if !s.Secret.Set() && s.SecretFile != "" {
			v, err := config.ReadSecretFile(s.SecretFile)
			if err != nil {
				return fmt.Errorf("notifier.sinks[%d] (%s) secret_file: %w", i, s.Name, err)
			}
			s.Secret = v
		}
	}
	return nil
}

// sinkName keeps names usable as KV keys, metric labels and log fields.
var sinkName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate reports every problem at once. Messages never contain a URL.
func (c *Config) Validate() error {
	var p config.Problems
	if c.AdviceDeadline <= 0 {
		p.Addf("notifier.advice_deadline must be positive")
	}
	if c.OverdueGrace < 0 {
		p.Addf("notifier.overdue_grace must not be negative")
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		p.Addf("notifier.concurrency %d: want 1..64", c.Concurrency)
	}
	if c.MaxAttempts < 1 {
		p.Addf("notifier.max_attempts must be at least 1")
	}
	if c.ClaimLease <= c.HTTPTimeout+c.MaxWait || c.ClaimTTL < time.Minute {
		p.Addf("notifier.claim_lease %s must exceed http_timeout + max_wait (%s) and claim_ttl must be at least 1m",
			c.ClaimLease, c.HTTPTimeout+c.MaxWait)
	}
	names := map[string]bool{}
	if c.ConsoleEnabled() {
		names[ConsoleSink] = true
	}
	for i, s := range c.Sinks {
		where := fmt.Sprintf("notifier.sinks[%d]", i)
		switch {
		case !sinkName.MatchString(s.Name):
			p.Addf("%s.name %q: want 1..64 letters, digits, - or _", where, s.Name)
		case s.Name == ConsoleSink:
			p.Addf("%s.name %q is reserved for the console sink (console: true)", where, s.Name)
		case names[s.Name]:
			p.Addf("%s.name %q is used twice", where, s.Name)
		}
		names[s.Name] = true
		switch s.Type {
		case TypeDiscord, TypeSlack, TypeTeams, TypeWebhook:
		default:
			p.Addf("%s (%s).type %q is not a known sink type: want discord, slack, teams or webhook", where, s.Name, s.Type)
		}
		if !s.URL.Set() {
			p.Addf("%s (%s): url or url_file is required", where, s.Name)
		} else if u, err := url.Parse(s.URL.Reveal()); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p.Addf("%s (%s): the webhook URL is not an absolute http(s) URL (value not shown: it is a secret)", where, s.Name)
		}
		if s.Secret.Set() && s.Type != TypeWebhook {
			p.Addf("%s (%s): secret only applies to type webhook", where, s.Name)
		}
		if s.Pace < 0 {
			p.Addf("%s (%s): pace must not be negative", where, s.Name)
		}
	}
	if len(names) == 0 {
		p.Addf("notifier: no sink: enable console or add a sink (e.g. SMARTMON_DISCORD_WEBHOOK_URL)")
	}
	check := func(where string, r RouteConfig) {
		for _, m := range r.Matchers {
			if _, err := amlabels.ParseMatchers(m); err != nil {
				p.Addf("%s.matchers %q: %v", where, m, err)
			}
		}
		for _, s := range r.Sinks {
			if !names[s] {
				p.Addf("%s.sinks: no sink named %q", where, s)
			}
		}
	}
	for i, r := range c.Routes {
		if len(r.Sinks) == 0 {
			p.Addf("notifier.routes[%d].sinks is empty", i)
		}
		check(fmt.Sprintf("notifier.routes[%d]", i), r)
	}
	if len(c.DefaultRoute.Matchers) > 0 {
		p.Addf("notifier.default_route takes no matchers: it applies when no route matched")
	}
	check("notifier.default_route", c.DefaultRoute)
	return p.Err()
}
