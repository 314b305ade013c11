package main_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/internal/proctest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
)

// rssMiB reads a process's resident set size from /proc (Linux).
func rssMiB(tb testing.TB, pid int) float64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				tb.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	tb.Fatal("VmRSS not found")
	return 0
}

// BenchmarkRSS measures the resident memory of `smartmon run` idle, and with
// 100,000 alerts (10,000 notifications of 10 pods) stored and waiting
// behind a model that never answers (the advice deadline is 3 minutes, so
// nothing leaves the queue during the measurement).
func BenchmarkRSS(b *testing.B) {
	bin, err := proctest.Build(b.TempDir(), ".")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		sink := proctest.NewSink(b)
		llm := fakellm.NewOllama(b, fakellm.WithModels("mistral"), fakellm.WithMode(fakellm.Hang))
		p := proctest.Start(b, bin, b.TempDir(), map[string]string{
			"SMARTMON_WEBHOOK_URL": sink.Srv.URL, "SMARTMON_OLLAMA_URL": llm.URL,
			"SMARTMON_ADVICE_DEADLINE": "3m", "SMARTMON_LOG_LEVEL": "warn",
		})
		pid := p.Cmd.Process.Pid
		// Idle: after start-up garbage is collected by the runtime's own pace.
		idle := rssMiB(b, pid)
		b.StartTimer()
		const notifications = 10000
		start := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range notifications {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				w := envelope.SampleGroup(fmt.Sprintf("rss-%06d", i), 10, start)
				code, err := proctest.Post(context.Background(), p.URL(), "", w)
				if err != nil || code != http.StatusOK {
					b.Errorf("post %d: %d %v", i, code, err)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		queued := rssMiB(b, pid)
		b.ReportMetric(idle, "MiB-idle")
		b.ReportMetric(queued, "MiB-100k-queued")
		b.ReportMetric(float64(len(sink.Got())), "posted-during")
		p.Kill()
		b.StartTimer()
	}
}
