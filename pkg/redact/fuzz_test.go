package redact_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact/redacttest"
)

// FuzzRedact: any input is handled without panicking, valid UTF-8 stays
// valid, every count has a placeholder in the output, and the text around
// what was removed is kept.
func FuzzRedact(f *testing.F) {
	for _, s := range redacttest.Planted(f) {
		f.Add(s.Text)
	}
	for _, l := range redacttest.Ordinary(f) {
		f.Add(l)
	}
	r := redact.MustNew()
	f.Fuzz(func(t *testing.T, s string) {
		out, counts := r.Redact(s)
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("valid input became invalid UTF-8: %q -> %q", s, out)
		}
		for kind, n := range counts {
			if n <= 0 || !strings.Contains(out, redact.Placeholder(kind)) {
				t.Fatalf("count %s=%d without its placeholder in %q", kind, n, out)
			}
		}
		if len(counts) == 0 && out != s {
			t.Fatalf("text changed without a count: %q -> %q", s, out)
		}
	})
}
