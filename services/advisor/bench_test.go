package advisor

import (
	"fmt"
	"testing"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
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

// BenchmarkStorm is the storm of TestStorm through the whole stage (real
// JetStream, fake Ollama answering in 150ms): 50 pods × 3 deployments × 10
// repeats, then 150 resolved. It reports the model calls per storm and the
// time until every notification was advised.
func BenchmarkStorm(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		fake := fakellm.NewOllama(b, fakellm.WithLatency(150*time.Millisecond), fakellm.WithLoaded("mistral:latest"))
		cfg := testConfig(BackendOllama, fake.URL)
		cfg.Deadline, cfg.CallTimeout = 30*time.Second, 30*time.Second
		h := startStage(b, cfg, fake)
		var envs []*envelope.Envelope
		for rep := range 10 {
			for _, dep := range []string{"api", "web", "worker"} {
				for pod := range 50 {
					envs = append(envs, crashEnv(b, dep, fmt.Sprintf("%s-7d9f8b6c5d-%05d", dep, pod), rep))
				}
			}
		}
		for _, dep := range []string{"api", "web", "worker"} {
			for pod := range 50 {
				envs = append(envs, crashEnv(b, dep, fmt.Sprintf("%s-7d9f8b6c5d-%05d", dep, pod), 0, resolved()))
			}
		}
		b.StartTimer()
		start := time.Now()
		publishAll(b, h.e, envs)
		// Poll for completion with a deadline (the timer keeps running).
		tick := time.NewTicker(20 * time.Millisecond)
		giveUp := time.After(time.Minute)
		for h.e.Messages(b, jsx.StreamAlerts, jsx.SubjectAdvised+".>") < uint64(len(envs)) {
			select {
			case <-tick.C:
			case <-giveUp:
				b.Fatal("storm not advised within a minute")
			}
		}
		tick.Stop()
		b.ReportMetric(float64(fake.Calls()), "model-calls/storm")
		b.ReportMetric(float64(len(envs)), "notifications/storm")
		b.ReportMetric(time.Since(start).Seconds(), "s-to-all-advised")
	}
}
