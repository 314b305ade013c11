package redact_test

import (
	"strings"
	"testing"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact/redacttest"
)

// FuzzRedact surrounds a planted secret's realistic text with fuzzed lines
// (log tails are arbitrary text) and checks: no panic; the planted secret
// does not survive (it may only appear as often as the fuzzed lines
// themselves spell it out in the open); redacting again changes nothing.
func FuzzRedact(f *testing.F) {
	planted := redacttest.Planted(f)
	ordinary := redacttest.Ordinary(f)
	for i := range planted {
		o := ordinary[i%len(ordinary)]
		f.Add(uint8(i), o, "")                               //nolint:gosec // the corpus is small
		f.Add(uint8(i), "", o)                               //nolint:gosec // the corpus is small
		f.Add(uint8(i), planted[(i+1)%len(planted)].Text, o) //nolint:gosec // the corpus is small
	}
	f.Add(uint8(0), "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----")
	f.Add(uint8(1), "env:\n- name: DB_PASSWORD", "  value: hunter2hunter2")
	f.Add(uint8(2), "[REDACTED:jwt]", "Authorization: Bearer [REDACTED:bearer-token]")
	f.Add(uint8(3), "\x00\xff\xfe", strings.Repeat("a", 5000))
	r := redact.MustNew()

	f.Fuzz(func(t *testing.T, pick uint8, before, after string) {
		s := planted[int(pick)%len(planted)]
		in := before + "\n" + s.Text + "\n" + after
		out, counts := r.Redact(in)

		open := strings.Count(before, s.Secret) + strings.Count(after, s.Secret)
		if n := strings.Count(out, s.Secret); n > open {
			t.Fatalf("planted %s secret survived redaction (%d times, %d in the fuzzed lines):\nin:  %q\nout: %q", s.Kind, n, open, in, out)
		}
		if counts.Total() == 0 {
			t.Fatalf("planted %s secret redacted but nothing counted", s.Kind)
		}
		again, more := r.Redact(out)
		if again != out {
			t.Fatalf("not idempotent:\nonce:  %q\ntwice: %q", out, again)
		}
		if more.Total() != 0 {
			t.Fatalf("second pass counted %v", more)
		}
	})
}

// FuzzRedactArbitrary feeds arbitrary text: no panic, idempotent, and text
// without any trigger of a secret pattern comes back unchanged.
func FuzzRedactArbitrary(f *testing.F) {
	for _, o := range redacttest.Ordinary(f) {
		f.Add(o)
	}
	for _, s := range redacttest.Planted(f) {
		f.Add(s.Text)
	}
	r := redact.MustNew()
	f.Fuzz(func(t *testing.T, in string) {
		out, counts := r.Redact(in)
		if counts.Total() == 0 && out != in {
			t.Fatalf("changed text without counting a redaction:\nin:  %q\nout: %q", in, out)
		}
		if again, _ := r.Redact(out); again != out {
			t.Fatalf("not idempotent:\nonce:  %q\ntwice: %q", out, again)
		}
	})
}
