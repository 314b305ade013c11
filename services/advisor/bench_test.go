package advisor

import (
	"fmt"
	"testing"
)

func BenchmarkPromptBuild(b *testing.B) {
	for _, lines := range []int{50, 2000, 20000} {
		b.Run(fmt.Sprintf("loglines=%d", lines), func(b *testing.B) {
			pb := builder(b, 4096, 768)
			env := crashEnv(b, "api", "api-7d9f8b6c5d-x2x9k", 0, withText(bigLogs(lines)))
			b.ReportAllocs()
			for b.Loop() {
				_ = pb.Build(env)
			}
		})
	}
}

func BenchmarkRedactOnly(b *testing.B) {
	pb := builder(b, 4096, 768)
	text := bigLogs(20000)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		_, _ = pb.red.Redact(text)
	}
}

func BenchmarkParseAdvice(b *testing.B) {
	data := "headline: container api restarted 7 times; last exit 1 (Error)"
	answer := `{"summary":"s","likely_cause":"c","confidence":"high","evidence":["container api restarted 7 times; last exit 1 (Error)"],` +
		`"next_steps":[{"command":"kubectl -n shop logs api-0 --previous","why":"w","risky":false},{"command":"kubectl -n shop rollout restart deploy/api","why":"w","risky":false}]}`
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseAdvice(answer, data); err != nil {
			b.Fatal(err)
		}
	}
}
