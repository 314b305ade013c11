// Package console is the sink for a person at a terminal: readable
// multi-line text on stdout (logs go to stderr), the first thing a newcomer
// sees after `make run` and `smartmon send-test-alert`.
package console

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
)

// Limits that keep one notification readable in a terminal; the console
// has no platform limit, but a 10,000-line log in an annotation must not
// scroll everything else away.
const (
	maxLine     = 300
	maxEvidence = 3
	maxSteps    = 5
	maxAdvice   = 1200
	indent      = "   "
)

// Sink writes notifications to w. Writes are serialised so that concurrent
// notifications never interleave.
type Sink struct {
	mu sync.Mutex
	w  io.Writer
}

// New returns a console sink writing to w (os.Stdout in the binaries, a
// buffer in tests).
func New(w io.Writer) *Sink { return &Sink{w: w} }

// Notify writes the message.
func (s *Sink) Notify(_ context.Context, r message.Request) (message.Result, error) {
	text := Render(r.Msg, r.Kind)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.w, text); err != nil {
		return message.Result{}, fmt.Errorf("write console: %w", err)
	}
	return message.Result{}, nil
}

// Render lays the message out as in the project's journeys:
//
//	🔥 FIRING  KubePodCrashLooping  payments/payments-api-7d9f8b6c5-x2x7k (critical)
//	   container api restarted 7 times in 10m; last exit 1 (Error) 42s ago
//	   evidence: "FATAL: config key DB_HOST missing" (previous container log, line 12 of 12)
//	   advice unavailable: no model at http://127.0.0.1:11434 (...)
//	   trace: smartmon trace 3f9a1c…   alertmanager: http://localhost:9093/#/alerts?…
func Render(m *message.Message, kind message.Kind) string {
	var b strings.Builder
	line := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			b.WriteString(indent + message.Truncate(message.Clean(s, false), maxLine) + "\n")
		}
	}
	status := m.Status
	if kind == message.KindFollowup {
		status = "ADVICE"
	}
	head := m.Emoji + " " + status + "  " + m.AlertName
	if m.Target != "" {
		head += "  " + m.Target
	}
	if m.Severity != "" {
		head += " (" + m.Severity + ")"
	}
	b.WriteString(message.Truncate(message.Clean(head, false), maxLine) + "\n")
	if !m.Firing {
		if m.Lasted > 0 {
			line("resolved after " + message.HumanDuration(m.Lasted))
		}
	} else if kind == message.KindNotify {
		line(m.Headline)
		if m.Headline == "" {
			line(m.Summary)
		}
		for i, e := range m.Evidence {
			if i == maxEvidence {
				line("evidence: +" + strconv.Itoa(len(m.Evidence)-maxEvidence) + " more")
				break
			}
			line("evidence: " + e)
		}
	}
	if len(m.Items) > 1 || m.More > 0 {
		line("alerts: " + message.List(m.Items, ", ", message.MaxItems, maxLine-8, m.More))
	}
	if a := m.Advice; a != nil && m.Firing {
		writeAdvice(&b, a)
	} else if m.AdviceNote != "" {
		line(m.AdviceNote)
	}
	tail := "trace: " + m.Trace
	for _, l := range m.Links {
		if l.Text == "Alertmanager" {
			tail += "   alertmanager: " + l.URL
		}
	}
	b.WriteString(indent + message.Truncate(message.Clean(tail, false), maxLine) + "\n")
	return b.String()
}

func writeAdvice(b *strings.Builder, a *message.Advice) {
	budget := maxAdvice
	put := func(s string) {
		s = message.Clean(s, false)
		if s == "" || budget <= 0 {
			return
		}
		s = message.Truncate(s, min(maxLine, budget))
		budget -= message.Runes(s)
		b.WriteString(indent + s + "\n")
	}
	if a.Text != "" {
		for _, l := range strings.Split(a.Text, "\n") {
			put("advice: " + l)
		}
	} else {
		cause := "likely cause"
		if a.Confidence != "" {
			cause += " (confidence: " + a.Confidence + ")"
		}
		put(cause + ": " + cmp.Or(a.LikelyCause, a.Summary))
		for i, st := range a.Steps {
			if i == maxSteps {
				put("+" + strconv.Itoa(len(a.Steps)-maxSteps) + " more steps")
				break
			}
			s := strconv.Itoa(i+1) + ". " + st.Command
			if st.Risky {
				s = strconv.Itoa(i+1) + ". ⚠ " + st.Command + "   (changes the cluster)"
			}
			put(s)
		}
	}
	if a.Truncated {
		put("(the model's answer was cut at its token limit)")
	}
	if a.Footer != "" {
		put(a.Footer)
	}
}
