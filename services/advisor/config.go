// Package advisor is the pipeline stage that asks a local language model
// (Ollama, or any server speaking the OpenAI chat-completions API) for advice
// on an enriched alert, inside a deadline, and always passes the alert on:
// with advice, or with the reason there is none.
package advisor

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
)

// Backends.
const (
	BackendOllama = "ollama"
	BackendOpenAI = "openai"
)

// Config is the advisor's section of the configuration file.
type Config struct {
	// Backend is "ollama" (native /api/chat) or "openai" (an
	// OpenAI-compatible /v1/chat/completions: llama.cpp server, vLLM,
	// LocalAI, Ollama's own /v1).
	Backend string `yaml:"backend"`
	// URL is the server's base URL, without /api or /v1.
	URL string `yaml:"url"`
	// Model to ask; for Ollama it must have been pulled.
	Model string `yaml:"model"`
	// APIKey is sent as a bearer token (OpenAI-compatible servers that
	// want one). Only from SMARTMON_LLM_API_KEY or a file.
	APIKey     config.Secret `yaml:"-"`
	APIKeyFile string        `yaml:"api_key_file"`

	// Deadline is the advice budget of one alert, measured from the moment
	// ingest received it. Past it the alert moves on without advice.
	Deadline time.Duration `yaml:"deadline"`
	// CallTimeout bounds one model call, also one that goes on past the
	// deadline to deliver late advice.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// LateWindow is how long past its deadline an alert that is still
	// queued for the model keeps its place: if a slot comes free in time,
	// its advice follows the first message as late advice. Alerts still
	// inside their deadline are served first. Negative: no late advice
	// for alerts that did not get a slot before their deadline.
	LateWindow time.Duration `yaml:"late_window"`

	// NumCtx is the context window the prompt must fit in (Ollama
	// num_ctx; for OpenAI-compatible servers, the server's context size).
	NumCtx int `yaml:"num_ctx"`
	// NumPredict caps the answer's tokens (Ollama num_predict, OpenAI
	// max_tokens): small models can loop forever otherwise.
	NumPredict int `yaml:"num_predict"`
	// Temperature of sampling; nil means 0.2.
	Temperature *float64 `yaml:"temperature"`
	// KeepAlive asks Ollama to keep the model loaded this long after a
	// call; 0 leaves the server's default (5m).
	KeepAlive time.Duration `yaml:"keep_alive"`

	// Concurrency is how many model calls run at once (like
	// OLLAMA_NUM_PARALLEL, default 1). Critical alerts get a free slot
	// first.
	Concurrency int `yaml:"concurrency"`
	// Inflight is how many alerts the stage holds at once while they wait
	// for advice. It is not what limits the model: alerts waiting for a
	// model slot still leave on time.
	Inflight int `yaml:"inflight"`

	// RetryInitial and RetryMax shape the backoff between attempts after
	// 503 busy, 5xx and timeouts; retries happen only inside the budget.
	RetryInitial time.Duration `yaml:"retry_initial"`
	RetryMax     time.Duration `yaml:"retry_max"`

	// BreakerFailures consecutive failures open the circuit breaker; while
	// it is open alerts skip the model at once. After BreakerCooldown one
	// probe call is let through; its success closes the breaker.
	BreakerFailures int           `yaml:"breaker_failures"`
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`

	// CacheTTL is how long advice for a problem is reused.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CheckInterval is how often the model's state (reachable, version,
	// present, loaded) is refreshed.
	CheckInterval time.Duration `yaml:"check_interval"`
	// DrainTimeout bounds how long shutdown waits for calls that would
	// deliver late advice.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if c.Backend == "" {
		c.Backend = BackendOllama
	}
	if c.URL == "" {
		c.URL = "http://127.0.0.1:11434"
	}
	if c.Model == "" {
		c.Model = "mistral"
	}
	if c.Deadline == 0 {
		c.Deadline = 45 * time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 3 * time.Minute
	}
	if c.NumCtx == 0 {
		c.NumCtx = 4096
	}
	if c.NumPredict == 0 {
		c.NumPredict = 768
	}
	if c.Temperature == nil {
		t := 0.2
		c.Temperature = &t
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.Inflight == 0 {
		c.Inflight = 256
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 500 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 3
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = 30 * time.Second
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = time.Hour
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = 30 * time.Second
	}
	if c.LateWindow == 0 {
		// Long enough for a few slow answers after a burst; short enough
		// that advice never arrives for an incident long handled.
		c.LateWindow = 10 * time.Minute
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
}

// ApplyEnv reads SMARTMON_LLM_BACKEND, SMARTMON_OLLAMA_URL, SMARTMON_MODEL,
// SMARTMON_ADVICE_DEADLINE and SMARTMON_LLM_API_KEY(_FILE).
func (c *Config) ApplyEnv(env config.Env) error {
	env.String("SMARTMON_LLM_BACKEND", &c.Backend)
	env.String("SMARTMON_OLLAMA_URL", &c.URL)
	env.String("SMARTMON_MODEL", &c.Model)
	if v, ok := env("SMARTMON_ADVICE_DEADLINE"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("SMARTMON_ADVICE_DEADLINE %q: want a duration such as 45s: %w", v, err)
		}
		c.Deadline = d
	}
	return env.Secret("SMARTMON_LLM_API_KEY", &c.APIKey, &c.APIKeyFile)
}

// Validate checks the values and reports every problem at once.
func (c *Config) Validate() error {
	var p config.Problems
	switch c.Backend {
	case BackendOllama, BackendOpenAI:
	default:
		p.Addf("advisor.backend %q: want %q or %q", c.Backend, BackendOllama, BackendOpenAI)
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.Addf("advisor.url %q: want http(s)://host:port", redactURL(c.URL))
	} else if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v1") || strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/api") {
		p.Addf("advisor.url %q: give the server's base URL, without /v1 or /api", redactURL(c.URL))
	}
	if strings.TrimSpace(c.Model) == "" {
		p.Addf("advisor.model is empty")
	}
	if c.Deadline < 100*time.Millisecond {
		p.Addf("advisor.deadline %s is too short", c.Deadline)
	}
	if c.CallTimeout < c.Deadline {
		p.Addf("advisor.call_timeout %s must be at least the deadline %s", c.CallTimeout, c.Deadline)
	}
	if c.NumPredict < 64 {
		p.Addf("advisor.num_predict %d is below 64: the answer would not fit", c.NumPredict)
	}
	if c.NumCtx < c.NumPredict+minPromptTokens {
		p.Addf("advisor.num_ctx %d leaves no room for a prompt next to num_predict %d (want at least %d)", c.NumCtx, c.NumPredict, c.NumPredict+minPromptTokens)
	}
	if c.Temperature != nil && (*c.Temperature < 0 || *c.Temperature > 2) {
		p.Addf("advisor.temperature %v: want 0..2", *c.Temperature)
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		p.Addf("advisor.concurrency %d: want 1..64", c.Concurrency)
	}
	if c.Inflight < c.Concurrency {
		p.Addf("advisor.inflight %d must be at least concurrency %d", c.Inflight, c.Concurrency)
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		p.Addf("advisor.retry_initial %s and retry_max %s: want 0 < initial <= max", c.RetryInitial, c.RetryMax)
	}
	if c.BreakerFailures < 1 {
		p.Addf("advisor.breaker_failures %d: want at least 1", c.BreakerFailures)
	}
	if c.BreakerCooldown <= 0 {
		p.Addf("advisor.breaker_cooldown must be positive")
	}
	if c.CacheTTL < time.Second {
		p.Addf("advisor.cache_ttl %s is too short", c.CacheTTL)
	}
	if c.CheckInterval < 100*time.Millisecond {
		p.Addf("advisor.check_interval %s is too short", c.CheckInterval)
	}
	return p.Err()
}

// redactURL drops a password from a URL so it can be shown in messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable url>"
	}
	return u.Redacted()
}
