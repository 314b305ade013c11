package redact_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact/redacttest"
)

func TestPlantedSecretsDoNotSurvive(t *testing.T) {
	r := redact.MustNew()
	samples := redacttest.Planted(t)
	require.GreaterOrEqual(t, len(samples), 40)
	kinds := map[string]bool{}
	wheres := map[string]bool{}
	for _, s := range samples {
		kinds[s.Kind] = true
		wheres[s.Where] = true
		out, counts := r.Redact(s.Text)
		assert.NotContains(t, out, s.Secret, "kind %s in %s survived: %s", s.Kind, s.Where, out)
		assert.Positive(t, counts[s.Kind], "kind %s not counted as such; counts %v; out %s", s.Kind, counts, out)
		assert.Contains(t, out, redact.Placeholder(s.Kind))
	}
	for _, w := range []string{"log", "event", "annotation", "env", "label"} {
		assert.True(t, wheres[w], "no sample hidden in %s", w)
	}
	assert.GreaterOrEqual(t, len(kinds), 15)
}

func TestOrdinaryLinesSurviveUnchanged(t *testing.T) {
	r := redact.MustNew()
	for _, l := range redacttest.Ordinary(t) {
		out, counts := r.Redact(l)
		assert.Equal(t, l, out, "false positive %v", counts)
		assert.Empty(t, counts)
	}
}

func TestRedactionIsIdempotent(t *testing.T) {
	r := redact.MustNew()
	for _, s := range redacttest.Planted(t) {
		once, _ := r.Redact(s.Text)
		twice, counts := r.Redact(once)
		assert.Equal(t, once, twice)
		assert.Empty(t, counts, "second pass found more in %q", once)
	}
}

func TestPairKeepsTheKeyAndContext(t *testing.T) {
	r := redact.MustNew()
	out, counts := r.Redact("connect user=orders password=Summer2024! host=db")
	assert.Equal(t, "connect user=orders password=[REDACTED:secret-pair] host=db", out)
	assert.Equal(t, redact.Counts{redact.KindSecretPair: 1}, counts)

	out, _ = r.Redact("postgres://orders:s3cr3t-Pa55@db:5432/orders")
	assert.Equal(t, "postgres://orders:[REDACTED:url-credentials]@db:5432/orders", out)

	// A rejected pair must not hide a secret inside its value.
	out, _ = r.Redact("Error: token=abcdef123456")
	assert.Equal(t, "Error: token=[REDACTED:secret-pair]", out)
}

func TestExtraPatterns(t *testing.T) {
	r, err := redact.New(redact.Config{Extra: []redact.Pattern{
		{Name: "acme-ticket-key", Regexp: `acme_tk_[0-9a-f]{16}`},
		{Name: "acme-session", Regexp: `sess\((?P<secret>[A-Z0-9]{10})\)`},
	}})
	require.NoError(t, err)
	out, counts := r.Redact("key acme_tk_0123456789abcdef used in sess(ABCDE12345)")
	assert.Equal(t, "key [REDACTED:acme-ticket-key] used in sess([REDACTED:acme-session])", out)
	assert.Equal(t, redact.Counts{"acme-ticket-key": 1, "acme-session": 1}, counts)
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]redact.Config{
		"bad regexp":   {Extra: []redact.Pattern{{Name: "x", Regexp: "("}}},
		"empty match":  {Extra: []redact.Pattern{{Name: "x", Regexp: "a*"}}},
		"bad name":     {Extra: []redact.Pattern{{Name: "Has Space", Regexp: "abc"}}},
		"duplicate":    {Extra: []redact.Pattern{{Name: "x", Regexp: "abc"}, {Name: "x", Regexp: "def"}}},
		"empty regexp": {Extra: []redact.Pattern{{Name: "x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := redact.New(c)
			require.Error(t, err)
		})
	}
}

func TestRedactMap(t *testing.T) {
	r := redact.MustNew()
	counts := redact.Counts{}
	out := r.RedactMap(map[string]string{
		"pod":            "api-0",
		"DB_PASSWORD":    "plain",
		"description":    "call https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX now",
		"api-token":      "abc",
		"secret_name":    "db-creds",
		"summary":        "",
		"tokens_per_sec": "12.5",
	}, counts)
	assert.Equal(t, "api-0", out["pod"])
	assert.Equal(t, "[REDACTED:secret-env]", out["DB_PASSWORD"])
	assert.Equal(t, "[REDACTED:secret-pair]", out["api-token"])
	assert.Equal(t, "db-creds", out["secret_name"])
	assert.Equal(t, "12.5", out["tokens_per_sec"])
	assert.Equal(t, "call [REDACTED:slack-webhook] now", out["description"])
	assert.Equal(t, 3, counts.Total())
}

func TestLooksSecretName(t *testing.T) {
	for _, n := range []string{"DB_PASSWORD", "apiToken", "client-secret", "SMTP_PASS", "ldap.pwd", "AWS_SECRET_ACCESS_KEY", "SESSION_SIGNING_KEY"} {
		assert.True(t, redact.LooksSecretName(n), n)
	}
	for _, n := range []string{"PWD", "SECRET_NAME", "TOKEN_FILE", "max_tokens", "BYPASS_CACHE", "PASSTHROUGH", "LOG_LEVEL", "tokenizer"} {
		assert.False(t, redact.LooksSecretName(n), n)
	}
}

func BenchmarkRedactLogTail(b *testing.B) {
	r := redact.MustNew()
	lines := redacttest.Ordinary(b)
	for _, s := range redacttest.Planted(b) {
		lines = append(lines, s.Text)
	}
	text := strings.Join(lines, "\n")
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		r.Redact(text)
	}
}
