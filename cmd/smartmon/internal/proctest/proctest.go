// Package proctest runs the real smartmon binary as a child process, for
// tests that must kill it (-9) and start it again on the same data dir,
// and a recording webhook sink to count what reached chat.
package proctest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// Build compiles cmd/smartmon into dir and returns the binary's path. pkg
// is the import path or directory of the main package.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, "smartmon")
	cmd := exec.Command("go", "build", "-o", bin, pkg) //nolint:gosec,noctx // test helper, fixed arguments
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return bin, nil
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// Proc is a running child process that listens on Listen: `smartmon run`,
// or another server a test needs (Alertmanager).
type Proc struct {
	Cmd    *exec.Cmd
	Listen string
	Logs   *SyncBuffer
	done   chan struct{}
}

// URL is the ingest webhook URL (of a `smartmon run`).
func (p *Proc) URL() string { return "http://" + p.Listen + "/api/v1/alerts" }

// Start runs `bin run` on dataDir with env, and waits for /readyz.
func Start(t testing.TB, bin, dataDir string, env map[string]string) *Proc {
	t.Helper()
	return StartListening(t, "smartmon", "/readyz", 60*time.Second, func(listen string) *exec.Cmd {
		cmd := exec.Command(bin, "run", "--data-dir", dataDir, "--listen", listen, "--nats-listen", "") //nolint:gosec,noctx // test binary
		cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dataDir, "no-kubeconfig"), "SMARTMON_LOG_FORMAT=json")
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		return cmd
	})
}

// StartListening starts the child that command builds for a free loopback
// address, waits (up to within) until GET http://addr+readyPath answers 200,
// and kills the child at cleanup. The child's stderr goes to Proc.Logs, its
// stdout is discarded.
//
// The address was free a moment before the child binds it; another
// process (CI runs many test binaries at once) can take it in between. A
// child that exits because its address is in use is started again on a
// new one; any other early exit fails the test with the child's log.
func StartListening(t testing.TB, name, readyPath string, within time.Duration, command func(addr string) *exec.Cmd) *Proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		listen := FreeAddr(t)
		cmd := command(listen)
		logs := &SyncBuffer{}
		cmd.Stdout = io.Discard
		cmd.Stderr = logs
		require.NoError(t, cmd.Start(), "start %s", name)
		p := &Proc{Cmd: cmd, Listen: listen, Logs: logs, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.done) }()
		t.Cleanup(p.Kill)
		if p.ready(t, readyPath, within) {
			return p
		}
		if attempt < 3 && strings.Contains(logs.String(), "address already in use") {
			t.Logf("%s could not listen on %s (taken meanwhile); starting it again", name, listen)
			continue
		}
		t.Fatalf("%s exited at start:\n%s", name, logs.String())
	}
}

// ready waits until the child answers readyPath (true) or exits (false).
func (p *Proc) ready(t testing.TB, readyPath string, within time.Duration) bool {
	t.Helper()
	require.Eventually(t, func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		return Answers200(http.MethodGet, "http://"+p.Listen+readyPath, "")
	}, within, 50*time.Millisecond)
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Answers200 sends one request (body as JSON if not empty) and reports
// whether it was answered 200; the condition of polls for readiness.
func Answers200(method, url, body string) bool {
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		return false
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Kill sends SIGKILL: no drain, no flush, like a crash or an OOM kill.
func (p *Proc) Kill() {
	if p.Cmd.Process != nil {
		_ = p.Cmd.Process.Kill()
	}
	<-p.done
}

// Stop sends SIGTERM and waits for a graceful exit.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("smartmon did not stop on SIGINT")
	}
}

// SyncBuffer is a bytes.Buffer safe to write from one goroutine (a child
// process's output, a console sink) while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Sink records generic-webhook posts.
type Sink struct {
	Srv *httptest.Server
	mu  sync.Mutex
	got []envelope.Envelope
	// Fail makes the sink answer 503 while it returns true.
	Fail func() bool
	// Latency is how long the sink takes to answer, like a real chat
	// platform; it makes work pile up in the pipeline.
	Latency time.Duration
}

// NewSink starts a recording sink.
func NewSink(t testing.TB) *Sink {
	t.Helper()
	s := &Sink{}
	s.Srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Latency > 0 {
			t := time.NewTimer(s.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if s.Fail != nil && s.Fail() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var env envelope.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.Header.Get("X-Smartmon-Kind") != "followup" {
			s.mu.Lock()
			s.got = append(s.got, env)
			s.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Srv.Close)
	return s
}

// Got returns the notifications received so far (follow-ups excluded).
func (s *Sink) Got() []envelope.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]envelope.Envelope(nil), s.got...)
}

// Post sends a webhook body to url and returns the HTTP status.
func Post(ctx context.Context, url, token string, w envelope.Webhook) (int, error) {
	body, err := json.Marshal(w)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
