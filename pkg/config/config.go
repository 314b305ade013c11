// Package config loads YAML configuration strictly (an unknown key is an
// error, because a misspelt key silently ignored is how alerts get lost) and
// reads secrets from the environment or files, never from flags.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode decodes YAML strictly: unknown keys are errors.
func Decode(data []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is a valid, empty config
		}
		return err
	}
	return nil
}

// Secret is a string that must not be printed. Its String and MarshalText
// hide the value, so a secret that slips into a log field or an error shows
// as [REDACTED].
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[REDACTED]"
}

// MarshalText hides the value in JSON and YAML output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the value, for the one place that must use it.
func (s Secret) Reveal() string { return string(s) }

// Set reports whether the secret has a value.
func (s Secret) Set() bool { return s != "" }

// Env is the environment as a lookup function, so tests can supply one.
type Env func(key string) (string, bool)

// OSEnv reads the process environment.
func OSEnv() Env { return os.LookupEnv }

// MapEnv serves a map, for tests.
func MapEnv(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// String sets *dst from the variable if it is set.
func (e Env) String(key string, dst *string) {
	if v, ok := e(key); ok {
		*dst = v
	}
}

// Secret resolves a secret from, in order: the variable KEY, a file named by
// KEY_FILE, then the value already in *dst or the file in *file. Trailing
// newlines of files are trimmed (editors and `echo` add them).
func (e Env) Secret(key string, dst *Secret, file *string) error {
	if v, ok := e(key); ok && v != "" {
		*dst = Secret(v)
		return nil
	}
	path := ""
	if v, ok := e(key + "_FILE"); ok && v != "" {
		path = v
	} else if file != nil && *file != "" && *dst == "" {
		path = *file
	}
	if path == "" {
		return nil
	}
	v, err := ReadSecretFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	*dst = v
	return nil
}

// ReadSecretFile reads a secret from a file; the error names the file, never
// its content.
func ReadSecretFile(path string) (Secret, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the operator names the file
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return Secret(v), nil
}

// Problems collects validation problems so Validate can report them all at
// once instead of one per restart.
type Problems []string

// Addf records a problem.
func (p *Problems) Addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Add records a non-nil error.
func (p *Problems) Add(err error) {
	if err != nil {
		*p = append(*p, err.Error())
	}
}

// Err returns nil or one error listing every problem.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New("invalid configuration: " + strings.Join(p, "; "))
}

// ByteSize is a size in bytes that reads "4MiB", "512KiB", "1GB" or a plain
// number from YAML and the environment.
type ByteSize int64

// ParseByteSize parses a size with an optional unit (B, KB, KiB, MB, MiB, GB, GiB).
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as 4MiB", s)
	}
	var n int64
	if _, err := fmt.Sscan(s[:i], &n); err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	mult := map[string]int64{"": 1, "b": 1, "kb": 1000, "kib": 1 << 10, "k": 1 << 10, "mb": 1000 * 1000, "mib": 1 << 20, "m": 1 << 20, "gb": 1000 * 1000 * 1000, "gib": 1 << 30, "g": 1 << 30}
	m, ok := mult[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, s[i:])
	}
	return ByteSize(n * m), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (YAML, env).
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
