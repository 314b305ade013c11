// Package redacttest loads the planted-secret corpus and the ordinary lines
// that pkg/redact is tested against, so that every stage that redacts (the
// enricher, the advisor) proves itself on the same samples.
package redacttest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Sample is one planted secret: Text is realistic text (a log line, an
// event message, an annotation, an environment entry, a label value) that
// contains Secret exactly once or more; after redaction Secret must not
// appear anywhere.
type Sample struct {
	Kind   string `json:"kind"`
	Secret string `json:"secret"`
	Where  string `json:"where"`
	Text   string `json:"text"`
}

// Dir is the directory holding the corpus files.
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("..", "testdata")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Planted returns the planted-secret corpus.
func Planted(t testing.TB) []Sample {
	t.Helper()
	data := read(t, "planted-secrets.jsonl")
	var out []Sample
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var s Sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("planted-secrets.jsonl line %d: %v", line, err)
		}
		if s.Kind == "" || s.Secret == "" || !strings.Contains(s.Text, s.Secret) {
			t.Fatalf("planted-secrets.jsonl line %d: kind and secret must be set and the text must contain the secret", line)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read planted-secrets.jsonl: %v", err)
	}
	return out
}

// Ordinary returns lines that contain no secret and must survive redaction
// unchanged: UUIDs, hashes, digests, timestamps, Kubernetes events, and
// lines that talk about passwords and tokens without containing one.
func Ordinary(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(string(read(t, "ordinary.txt")), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func read(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(), name)) //nolint:gosec // the corpus files of this package
	if err != nil {
		t.Fatalf("read redaction corpus: %v", err)
	}
	return data
}
