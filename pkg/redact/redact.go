// Package redact removes credentials from untrusted text (Alertmanager labels
// and annotations, Kubernetes events, container logs, environment values,
// model output) before it leaves the process that read it. Nothing secret may
// leave a cluster through us: the enricher redacts everything it gathers and
// the advisor redacts again before a prompt and after a model answer.
//
// Each secret is replaced by "[REDACTED:<kind>]" and counted by kind. The
// counts can be recorded and shown; the values never are.
package redact

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Kinds of secrets the built-in patterns find. The replacement text is
// "[REDACTED:<kind>]".
const (
	KindPEMPrivateKey     = "pem-private-key"
	KindJWT               = "jwt"
	KindAWSAccessKey      = "aws-access-key"
	KindAWSSecretKey      = "aws-secret-key"
	KindGCPServiceAccount = "gcp-service-account"
	KindGCPAPIKey         = "gcp-api-key" //nolint:gosec // a kind name, not a credential
	KindAzureKey          = "azure-key"
	KindGitHubToken       = "github-token"
	KindGitLabToken       = "gitlab-token"
	KindSlackToken        = "slack-token"
	KindSlackWebhook      = "slack-webhook"
	KindDiscordWebhook    = "discord-webhook"
	KindDiscordToken      = "discord-token"
	KindTeamsWebhook      = "teams-webhook"
	KindStripeKey         = "stripe-key"
	KindURLCredentials    = "url-credentials"
	KindBearerToken       = "bearer-token"
	KindBasicAuth         = "basic-auth"
	KindSecretEnv         = "secret-env"
	KindSecretPair        = "secret-pair"
)

// Counts is how many secrets of each kind were removed. It never holds a
// value, so it is safe to record in the envelope and to log.
type Counts map[string]int

// Add merges o into c. c must not be nil.
func (c Counts) Add(o Counts) {
	for k, n := range o {
		c[k] += n
	}
}

// Total is the number of secrets removed.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// String lists the counts in a stable order, e.g. "jwt=1 secret-env=2".
func (c Counts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, c[k])
	}
	return strings.Join(parts, " ")
}

// Pattern is an operator-supplied pattern for secrets the built-in ones do
// not know (an in-house token format). If Regexp has a group named "secret",
// only that group is replaced, so context such as a key name survives;
// otherwise the whole match is.
type Pattern struct {
	Name   string `yaml:"name" json:"name"`
	Regexp string `yaml:"regexp" json:"regexp"`
}

// Config configures a Redactor.
type Config struct {
	// Extra patterns run after the built-in ones.
	Extra []Pattern `yaml:"extra" json:"extra,omitempty"`
}

// Validate reports patterns that do not compile or have no usable name.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, p := range c.Extra {
		if !validKind.MatchString(p.Name) {
			errs = append(errs, fmt.Errorf("redact.extra[%d].name %q: want lower-case letters, digits and dashes", i, p.Name))
		}
		if seen[p.Name] {
			errs = append(errs, fmt.Errorf("redact.extra[%d].name %q is used twice", i, p.Name))
		}
		seen[p.Name] = true
		if p.Regexp == "" {
			errs = append(errs, fmt.Errorf("redact.extra[%d].regexp is empty", i))
			continue
		}
		re, err := regexp.Compile(p.Regexp)
		if err != nil {
			errs = append(errs, fmt.Errorf("redact.extra[%d].regexp: %w", i, err))
			continue
		}
		if re.MatchString("") {
			errs = append(errs, fmt.Errorf("redact.extra[%d].regexp %q matches the empty string", i, p.Regexp))
		}
	}
	return errors.Join(errs...)
}

var validKind = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Redactor replaces secrets in text. It is immutable after New and safe for
// concurrent use.
type Redactor struct {
	rules []rule
}

// rule is one compiled pattern. Groups whose names start with "secret" hold
// the part to replace (RE2 has no duplicate group names, so alternatives use
// secret, secret2, ...); without such groups the whole match is replaced. A
// group named "name" holds a key or variable name for keep and kindOf.
type rule struct {
	kind    string
	re      *regexp.Regexp
	secrets []int // indexes of secret* groups
	name    int   // index of the name group, -1 if none
	keep    func(name, secret string) bool
	kindOf  func(name string) string
	quick   []string // the text must contain one of these (lower-cased) for the rule to run
	// multiline rules run on the whole text, first (before the line
	// rules) or last.
	multiline, first bool
}

// New compiles the built-in patterns and cfg's extra ones.
func New(cfg Config) (*Redactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rules := builtins()
	for _, p := range cfg.Extra {
		rules = append(rules, compile(p.Name, regexp.MustCompile(p.Regexp), nil, nil))
	}
	return &Redactor{rules: rules}, nil
}

// MustNew is New for the built-in patterns only, which always compile.
func MustNew() *Redactor {
	r, err := New(Config{})
	if err != nil {
		panic(err) // the built-in patterns are constants; tests cover them
	}
	return r
}

func compile(kind string, re *regexp.Regexp, keep func(name, secret string) bool, quick []string) rule {
	r := rule{kind: kind, re: re, name: -1, keep: keep, quick: quick}
	for i, n := range re.SubexpNames() {
		switch {
		case strings.HasPrefix(n, "secret"):
			r.secrets = append(r.secrets, i)
		case n == "name":
			r.name = i
		}
	}
	return r
}

// Placeholder is the replacement text for a secret of the given kind.
func Placeholder(kind string) string { return "[REDACTED:" + kind + "]" }

// Redact returns s with every secret replaced, and how many of each kind it
// replaced (nil if none).
//
// Rules that may span lines (PEM blocks, YAML env entries) run on the whole
// text; the others run line by line, and only on lines that contain one of
// their trigger words, which keeps the cost of a 50-line log tail low.
func (r *Redactor) Redact(s string) (string, Counts) {
	if s == "" {
		return s, nil
	}
	var counts Counts
	for i := range r.rules {
		if ru := &r.rules[i]; ru.multiline && ru.first {
			s = ru.applyWhole(s, &counts)
		}
	}
	lines := strings.SplitAfter(s, "\n")
	changed := false
	for li, line := range lines {
		lower := strings.ToLower(line)
		for i := range r.rules {
			ru := &r.rules[i]
			if ru.multiline || (len(ru.quick) > 0 && !containsAny(lower, ru.quick)) {
				continue
			}
			if out, n := ru.apply(line, &counts); n > 0 {
				line, lower, changed = out, strings.ToLower(out), true
			}
		}
		lines[li] = line
	}
	if changed {
		s = strings.Join(lines, "")
	}
	for i := range r.rules {
		if ru := &r.rules[i]; ru.multiline && !ru.first {
			s = ru.applyWhole(s, &counts)
		}
	}
	return s, counts
}

func (ru *rule) applyWhole(s string, counts *Counts) string {
	if len(ru.quick) > 0 && !containsAny(strings.ToLower(s), ru.quick) {
		return s
	}
	out, _ := ru.apply(s, counts)
	return out
}

// RedactMap returns a copy of m with every value redacted; a value whose key
// looks secret (DB_PASSWORD, api-token) is replaced whole. It adds what it
// removed to counts, which must not be nil.
func (r *Redactor) RedactMap(m map[string]string, counts Counts) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		rv, c := r.Redact(v)
		counts.Add(c)
		if LooksSecretName(k) && !isPlaceholderValue(v) && !isPlaceholderValue(rv) {
			// The key says the whole value is a credential, whatever
			// its shape.
			kind := KindSecretPair
			if isEnvName(k) {
				kind = KindSecretEnv
			}
			rv = Placeholder(kind)
			counts[kind]++
		}
		out[k] = rv
	}
	return out
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// apply replaces the rule's matches in s. It scans match by match instead
// of FindAll so that a match the keep function rejects ("Error: token=x"
// whose name is Error) does not hide a secret inside it: the scan resumes
// right after the rejected match's name.
func (ru *rule) apply(s string, counts *Counts) (string, int) {
	var b strings.Builder
	last, pos, n := 0, 0, 0
	for pos <= len(s) {
		m := ru.re.FindStringSubmatchIndex(s[pos:])
		if m == nil {
			break
		}
		for i := range m {
			if m[i] >= 0 {
				m[i] += pos
			}
		}
		next := m[1]
		if ru.name >= 0 && m[2*ru.name+1] > m[0] {
			next = m[2*ru.name+1]
		}
		if next <= pos {
			next = pos + 1
		}
		start, end := m[0], m[1]
		if len(ru.secrets) > 0 {
			start, end = -1, -1
			for _, g := range ru.secrets {
				if m[2*g] >= 0 && m[2*g+1] > m[2*g] {
					start, end = m[2*g], m[2*g+1]
					break
				}
			}
		}
		name := ""
		if ru.name >= 0 && m[2*ru.name] >= 0 {
			name = s[m[2*ru.name]:m[2*ru.name+1]]
		}
		// A span that already holds a placeholder was redacted by a more
		// specific rule; replacing it again would lose that kind.
		if start < 0 || start < last || strings.Contains(s[start:end], "[REDACTED:") || (ru.keep != nil && !ru.keep(name, s[start:end])) {
			pos = next
			continue
		}
		kind := ru.kind
		if ru.kindOf != nil {
			kind = ru.kindOf(name)
		}
		b.WriteString(s[last:start])
		b.WriteString(Placeholder(kind))
		last = end
		if *counts == nil {
			*counts = Counts{}
		}
		(*counts)[kind]++
		n++
		pos = max(m[1], pos+1)
	}
	if n == 0 {
		return s, 0
	}
	b.WriteString(s[last:])
	return b.String(), n
}

// secretWords are the parts of a key or variable name that mark its value
// as secret.
var secretWords = []string{
	"password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key",
	"accesskey", "access_key", "access-key", "privatekey", "private_key", "private-key",
	"credential", "signingkey", "signing_key", "encryptionkey", "encryption_key",
	"masterkey", "master_key", "sessionkey", "session_key", "auth_key", "authkey",
	"connectionstring", "connection_string", "dsn", "webhook_url", "webhookurl",
}

// pairTriggers are the lower-case words one of which a line must contain
// for the key=value rules to look at it.
var pairTriggers = append([]string{"pass", "pwd"}, secretWords...)

// harmlessSuffixes mark names whose value is about a secret, not the secret
// itself (SECRET_NAME, TOKEN_FILE, password_min_length).
var harmlessSuffixes = []string{
	"name", "file", "path", "dir", "ref", "ttl", "expiry", "expires", "expiration", "length",
	"count", "size", "timeout", "duration", "type", "version", "id_type", "enabled", "required",
	"policy", "_url_file", "namespace", "mount", "key_ref", "keyref", "secretname",
}

// LooksSecretName reports whether a key or variable name says its value is a
// credential (DB_PASSWORD, apiToken, client-secret), and not merely about one
// (SECRET_NAME, TOKEN_FILE).
func LooksSecretName(name string) bool {
	// "tokens" is a count (max_tokens, prompt_tokens), not a credential.
	l := strings.ReplaceAll(strings.ToLower(name), "tokens", "")
	hit := false
	for _, w := range secretWords {
		if strings.Contains(l, w) {
			hit = true
			break
		}
	}
	if !hit {
		// "pass" and "pwd" only as a whole word part: DB_PASS, ldap.pwd,
		// but not PASSTHROUGH, BYPASS or the shell's PWD.
		for _, part := range strings.FieldsFunc(l, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
			if part == "pass" || (part == "pwd" && l != "pwd" && l != "oldpwd") {
				hit = true
				break
			}
		}
	}
	if !hit {
		return false
	}
	for _, suf := range harmlessSuffixes {
		if strings.HasSuffix(l, suf) {
			return false
		}
	}
	return !strings.Contains(l, "tokenizer")
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

func isEnvName(n string) bool { return envName.MatchString(n) }

// placeholderValues are values next to a secret-looking key that are not
// secrets (a default, an explicit "unset", our own placeholders).
func isPlaceholderValue(v string) bool {
	l := strings.ToLower(strings.Trim(v, `"'()[]{}.,;: `))
	switch l {
	case "", "null", "nil", "<nil>", "none", "true", "false", "yes", "no", "on", "off",
		"required", "optional", "set", "unset", "empty", "redacted", "***", "****", "*****", "xxx", "changeme!":
		return true
	}
	if len(l) <= 6 && strings.Trim(l, "0123456789") == "" {
		return true // a small number next to a secret-looking key is a count or a port
	}
	return strings.HasPrefix(l, "[redacted") || strings.HasPrefix(l, "redacted:") || strings.HasPrefix(l, "<") ||
		strings.HasPrefix(l, "${") || strings.HasPrefix(l, "$(") || strings.HasPrefix(l, "{{") ||
		strings.Trim(l, "*x") == ""
}

func pairKind(name string) string {
	if isEnvName(name) {
		return KindSecretEnv
	}
	return KindSecretPair
}

// keepPair keeps a key=value pair whose key looks secret and whose value is
// a value, not a placeholder or a reference.
func keepPair(name, secret string) bool {
	return LooksSecretName(name) && !isPlaceholderValue(secret) && !strings.HasPrefix(secret, "[REDACTED")
}

func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

// keepBearer avoids prose such as "bearer authentication failed": opaque
// tokens are long and almost always contain a digit.
func keepBearer(_, secret string) bool {
	return len(secret) >= 12 && hasDigit(secret) && !strings.HasPrefix(secret, "[REDACTED")
}

// keepBasic keeps "Basic <base64>" only when it decodes to user:password.
func keepBasic(_, secret string) bool {
	b, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(secret, "="))
		if err != nil {
			return false
		}
	}
	i := strings.IndexByte(string(b), ':')
	return i > 0 && i < len(b)-1
}

// keepAWSSecret requires the 40 characters to look random: mixed case or a
// digit, not a word or a hex hash.
func keepAWSSecret(_, secret string) bool {
	return hasDigit(secret) && strings.ToLower(secret) != secret && strings.ToUpper(secret) != secret
}

func builtins() []rule {
	m := regexp.MustCompile
	pem := compile(KindPEMPrivateKey, m(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:(?s:.*?)-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)`), nil, []string{"private key-----"})
	pem.multiline, pem.first = true, true
	rules := []rule{
		// PEM private keys, also with escaped newlines inside JSON (GCP
		// service-account files) and cut off before their END line.
		pem,
		compile(KindGCPServiceAccount, m(`"private_key_id"\s*:\s*"(?P<secret>[0-9a-f]{16,})"`), nil, []string{"private_key_id"}),
		compile(KindJWT, m(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`), nil, []string{"eyj"}),
		// Webhook URLs carry their credential in the path.
		compile(KindSlackWebhook, m(`https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+`), nil, []string{"hooks.slack.com"}),
		compile(KindDiscordWebhook, m(`https://(?:(?:canary|ptb)\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/\d+/[A-Za-z0-9_.-]+`), nil, []string{"discord"}),
		compile(KindTeamsWebhook, m(`https://[A-Za-z0-9.-]*(?:webhook\.office\.com|logic\.azure\.com|environment\.api\.powerplatform\.com)(?::\d+)?/[^\s"'<>]+`), nil, []string{"webhook.office.com", "logic.azure.com", "powerplatform.com"}),
		compile(KindGitHubToken, m(`\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b`), nil, []string{"gh", "github_pat_"}),
		compile(KindGitLabToken, m(`\bgl(?:pat|ptt|dt|rt|cbt|ft|imt|oas|soat|agent)-[A-Za-z0-9_-]{20,}`), nil, []string{"gl"}),
		compile(KindSlackToken, m(`\b(?:xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9]+-\d+-[a-f0-9]+)`), nil, []string{"xox", "xapp-"}),
		compile(KindDiscordToken, m(`\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}\b`), nil, nil),
		compile(KindStripeKey, m(`\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}`), nil, []string{"k_live_", "k_test_"}),
		compile(KindGCPAPIKey, m(`\bAIza[0-9A-Za-z_-]{35}`), nil, []string{"aiza"}),
		compile(KindAWSAccessKey, m(`\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b`), nil, []string{"akia", "asia", "abia", "acca", "agpa", "aida", "aroa", "anpa", "anva", "aipa"}),
		compile(KindAWSSecretKey, m(`(?i)(?:aws)?[_.-]?(?:secret)[_.-]?(?:access)?[_.-]?key(?:[_.-]?id)?["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`), keepAWSSecret, []string{"secret"}),
		compile(KindAWSSecretKey, m(`(?:^|[^A-Za-z0-9/+=])(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`), func(_, s string) bool { return keepAWSSecret("", s) && strings.ContainsAny(s, "/+") }, []string{"aws"}),
		compile(KindAzureKey, m(`(?i)\b(?:AccountKey|SharedAccessKey|SharedSecretValue)=(?P<secret>[A-Za-z0-9+/]{20,}={0,2})`), nil, []string{"accountkey", "sharedaccesskey", "sharedsecretvalue"}),
		compile(KindAzureKey, m(`(?i)[?&]sig=(?P<secret>[A-Za-z0-9%+/=]{20,})`), nil, []string{"sig="}),
		// Credentials in URLs: scheme://user:pass@host keeps the user.
		compile(KindURLCredentials, m(`\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@"'<>]+:(?P<secret>[^\s@/"'<>]+)@`), func(_, s string) bool { return !strings.HasPrefix(s, "[REDACTED") }, []string{"://"}),
		compile(KindBearerToken, m(`(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]+=*)`), keepBearer, []string{"bearer"}),
		compile(KindBearerToken, m(`(?i)\bauthorization["']?\s*[:=]\s*["']?(?:token\s+)?(?P<secret>[A-Za-z0-9\-._~+/]{20,}=*)`), keepBearer, []string{"authorization"}),
		compile(KindBasicAuth, m(`(?i)\bbasic\s+(?P<secret>[A-Za-z0-9+/]{6,}={0,2})`), keepBasic, []string{"basic"}),
	}
	// Environment variables in Kubernetes' JSON and YAML forms: the name
	// and the value are separate fields.
	envJSON := compile(KindSecretEnv, m(`"name"\s*:\s*"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)"\s*,\s*"value"\s*:\s*"(?P<secret>(?:[^"\\]|\\.)+)"`), keepPair, []string{`"value"`})
	envJSON.kindOf = pairKind
	envYAML := compile(KindSecretEnv, m(`(?m)name:[ \t]*["']?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)["']?[ \t]*\r?\n[ \t]*value:[ \t]*(?:"(?P<secret>[^"\n]+)"|'(?P<secret2>[^'\n]+)'|(?P<secret3>[^\s"'][^\n]*))`), keepPair, []string{"value:"})
	envYAML.kindOf = pairKind
	envYAML.multiline = true
	// key=value, key: value, "key": "value", --key=value.
	pair := compile(KindSecretPair, m(`(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)["']?[ \t]*[:=][ \t]*(?:"(?P<secret>(?:[^"\\\n]|\\.)+)"|'(?P<secret2>[^'\n]+)'|(?P<secret3>[^\s"',;&]+))`), keepPair, pairTriggers)
	pair.kindOf = pairKind
	return append(rules, envJSON, envYAML, pair)
}
