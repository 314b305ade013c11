package enricher

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// render writes the compact, describe-like text the advisor's prompt and
// the chat message use. now is the reference for "ago".
func render(d *envelope.EnrichmentDetail, errs []string, now time.Time) string {
	var b strings.Builder
	for i := range d.HPAs {
		renderHPA(&b, &d.HPAs[i], now)
	}
	for i := range d.PVCs {
		renderPVC(&b, &d.PVCs[i], now)
	}
	if len(d.MorePVCs) > 0 {
		fmt.Fprintf(&b, "PVCs not looked at (limit %d): %s\n", maxTargetPVCs, summarise(d.MorePVCs, 5))
	}
	if len(d.MoreHPAs) > 0 {
		fmt.Fprintf(&b, "HPAs not looked at (limit %d): %s\n", maxTargetHPAs, summarise(d.MoreHPAs, 5))
	}
	for i := range d.Workloads {
		renderWorkload(&b, &d.Workloads[i], now)
	}
	for i := range d.Pods {
		renderPod(&b, &d.Pods[i], now)
	}
	for _, n := range d.Nodes {
		if n.Gone {
			fmt.Fprintf(&b, "Node %s: not found\n", n.Name)
			continue
		}
		fmt.Fprintf(&b, "Node %s:", n.Name)
		for _, c := range n.Conditions {
			fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
		}
		if n.Unschedulable {
			b.WriteString(" (cordoned)")
		}
		b.WriteByte('\n')
		for _, c := range n.Conditions {
			if nodeConditionBad(c) && c.Message != "" {
				fmt.Fprintf(&b, "  %s %s: %s\n", c.Type, c.Reason, c.Message)
			}
		}
		renderEvents(&b, n.Events, now)
	}
	if len(errs) > 0 {
		b.WriteString("Lookup problems:\n")
		for _, e := range errs {
			fmt.Fprintf(&b, "  - %s\n", e)
		}
	}
	if len(d.Trimmed) > 0 {
		fmt.Fprintf(&b, "(budget: left out %s)\n", strings.Join(d.Trimmed, "; "))
	}
	return b.String()
}

func nodeConditionBad(c envelope.ConditionEvidence) bool {
	if c.Type == "Ready" {
		return c.Status != "True"
	}
	return c.Status == "True"
}

func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	d := now.Sub(*t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func renderWorkload(b *strings.Builder, w *envelope.WorkloadEvidence, now time.Time) {
	fmt.Fprintf(b, "%s %s/%s", w.Kind, w.Namespace, w.Name)
	if w.Parent != "" {
		fmt.Fprintf(b, " (owned by %s)", w.Parent)
	}
	if w.Replicas != "" {
		fmt.Fprintf(b, ": %s", w.Replicas)
	}
	b.WriteByte('\n')
	if w.Revision != "" || w.LastRollout != nil {
		fmt.Fprintf(b, "  Revision %s", w.Revision)
		if w.LastRollout != nil {
			fmt.Fprintf(b, ", rolled out %s (%s)", ago(w.LastRollout, now), w.LastRollout.Format(time.RFC3339))
		}
		b.WriteByte('\n')
	}
	for _, c := range w.ImageChanges {
		fmt.Fprintf(b, "  Image change: %s\n", c)
	}
	if len(w.Images) > 0 {
		fmt.Fprintf(b, "  Images: %s\n", strings.Join(w.Images, ", "))
	}
	for _, c := range w.Conditions {
		if c.Status != "True" || c.Type == "Failed" {
			fmt.Fprintf(b, "  Condition %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	renderEvents(b, w.Events, now)
	if len(w.MorePods) > 0 {
		fmt.Fprintf(b, "  %d pods in this alert group, %d in detail below, +%d more: %s\n", w.Pods, w.PodsShown, len(w.MorePods), summarise(w.MorePods, 10))
	}
}

// summarise lists the first n items and counts the rest.
func summarise(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(", and %d more", len(items)-n)
}

func renderEvents(b *strings.Builder, evs []envelope.EventEvidence, now time.Time) {
	if len(evs) == 0 {
		return
	}
	b.WriteString("  Events (newest first):\n")
	for _, e := range evs {
		t := e.LastSeen
		fmt.Fprintf(b, "    %s %s x%d (%s): %s\n", e.Type, e.Reason, e.Count, ago(&t, now), oneLine(e.Message))
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func renderState(s *envelope.ContainerState, now time.Time) string {
	if s == nil {
		return ""
	}
	out := s.State
	if s.Reason != "" {
		out += " " + s.Reason
	}
	if s.ExitCode != nil {
		out += fmt.Sprintf(" exit %d", *s.ExitCode)
	}
	if s.Signal != 0 {
		out += fmt.Sprintf(" signal %d", s.Signal)
	}
	if s.FinishedAt != nil {
		out += " " + ago(s.FinishedAt, now)
		if s.StartedAt != nil {
			out += fmt.Sprintf(" (ran %s)", s.FinishedAt.Sub(*s.StartedAt).Round(time.Second))
		}
	} else if s.StartedAt != nil {
		out += " since " + ago(s.StartedAt, now)
	}
	if s.Message != "" {
		out += ": " + oneLine(s.Message)
	}
	return out
}

func kv(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func renderPod(b *strings.Builder, p *envelope.PodEvidence, now time.Time) {
	if p.Gone {
		fmt.Fprintf(b, "Pod %s/%s: no longer exists (deleted before we looked)\n", p.Namespace, p.Name)
		return
	}
	fmt.Fprintf(b, "Pod %s/%s", p.Namespace, p.Name)
	if p.Owner != "" {
		fmt.Fprintf(b, " (%s)", p.Owner)
	}
	fmt.Fprintf(b, ": %s", p.Phase)
	if p.Reason != "" {
		fmt.Fprintf(b, " %s", p.Reason)
	}
	if p.Node != "" {
		fmt.Fprintf(b, " on %s", p.Node)
	}
	if p.QoS != "" {
		fmt.Fprintf(b, ", QoS %s", p.QoS)
	}
	b.WriteByte('\n')
	if p.Message != "" {
		fmt.Fprintf(b, "  Message: %s\n", oneLine(p.Message))
	}
	var bad []string
	for _, c := range p.Conditions {
		if c.Status != "True" {
			s := c.Type + "=" + c.Status
			if c.Reason != "" {
				s += " (" + c.Reason
				if c.Message != "" {
					s += ": " + oneLine(c.Message)
				}
				s += ")"
			}
			bad = append(bad, s)
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(b, "  Conditions: %s\n", strings.Join(bad, "; "))
	}
	for _, c := range p.Containers {
		kind := "Container"
		if c.Init {
			kind = "Init container"
		}
		fmt.Fprintf(b, "  %s %s: image %s, ready=%t, restarts=%d\n", kind, c.Name, c.Image, c.Ready, c.RestartCount)
		if s := renderState(c.State, now); s != "" {
			fmt.Fprintf(b, "    State: %s\n", s)
		}
		if s := renderState(c.LastState, now); s != "" {
			fmt.Fprintf(b, "    Last state: %s\n", s)
		}
		if len(c.Requests) > 0 || len(c.Limits) > 0 {
			fmt.Fprintf(b, "    Requests: %s; Limits: %s\n", orNone(kv(c.Requests)), orNone(kv(c.Limits)))
		}
		if len(c.Env) > 0 {
			fmt.Fprintf(b, "    Env: %s\n", strings.Join(c.Env, " "))
		}
	}
	renderEvents(b, p.Events, now)
	for _, l := range p.Logs {
		which := "current"
		if l.Previous {
			which = "previous"
		}
		if l.Error != "" {
			fmt.Fprintf(b, "  Log %s (%s): %s\n", l.Container, which, l.Error)
			continue
		}
		cut := ""
		if l.Truncated {
			cut = ", tail"
		}
		fmt.Fprintf(b, "  Log %s (%s%s):\n", l.Container, which, cut)
		for _, line := range strings.Split(l.Text, "\n") {
			fmt.Fprintf(b, "    | %s\n", line)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// headline picks the one finding an engineer would say first, and the few
// quotes worth showing in chat.
func headline(d *envelope.EnrichmentDetail, now time.Time) (string, []string) {
	var head string
	var key []string
	set := func(s string) {
		if head == "" {
			head = s
		}
	}
	// An alert that names a claim or an autoscaler is about it: its
	// finding comes before anything found on the pods around it.
	for i := range d.HPAs {
		h, k := hpaHeadline(&d.HPAs[i])
		set(h)
		key = append(key, k...)
	}
	for i := range d.PVCs {
		if c := &d.PVCs[i]; c.For == "" {
			h, k := pvcHeadline(c)
			if h != "" {
				set(h)
			}
			key = append(key, k...)
		}
	}
	for _, n := range d.Nodes {
		for _, c := range n.Conditions {
			if c.Type == "Ready" && c.Status != "True" {
				set(fmt.Sprintf("node %s is NotReady (%s)", n.Name, c.Reason))
				if c.Message != "" {
					key = append(key, "node "+n.Name+": "+oneLine(c.Message))
				}
			}
		}
	}
	for i := range d.Pods {
		p := &d.Pods[i]
		if p.Gone {
			set(fmt.Sprintf("pod %s no longer exists", p.Name))
			continue
		}
		for _, c := range p.Containers {
			ls, st := c.LastState, c.State
			switch {
			case st != nil && st.State == "waiting" && (st.Reason == "ImagePullBackOff" || st.Reason == "ErrImagePull" || st.Reason == "InvalidImageName"):
				set(fmt.Sprintf("container %s cannot pull image %s: %s", c.Name, c.Image, st.Reason))
				if st.Message != "" {
					key = append(key, oneLine(st.Message))
				}
			case (ls != nil && ls.Reason == "OOMKilled") || (st != nil && st.Reason == "OOMKilled"):
				s := ls
				if st != nil && st.Reason == "OOMKilled" {
					s = st
				}
				h := fmt.Sprintf("container %s was OOMKilled (exit %d)", c.Name, deref(s.ExitCode))
				if m := c.Limits["memory"]; m != "" {
					h += " at its memory limit " + m
				}
				set(h + fmt.Sprintf("; %d restarts", c.RestartCount))
				key = append(key, fmt.Sprintf("%s: OOMKilled, exit %d, memory limit %s", c.Name, deref(s.ExitCode), orNone(c.Limits["memory"])))
			case c.RestartCount > 0 && ls != nil && ls.State == "terminated":
				h := fmt.Sprintf("container %s restarted %d times; last exit %d (%s)", c.Name, c.RestartCount, deref(ls.ExitCode), ls.Reason)
				if ls.FinishedAt != nil {
					h += " " + ago(ls.FinishedAt, now)
				}
				if st != nil && st.State == "waiting" && st.Reason != "" {
					h += ", now " + st.Reason
				}
				set(h)
			}
		}
		for _, c := range p.Conditions {
			if c.Type == "PodScheduled" && c.Status == "False" {
				set(fmt.Sprintf("pod %s is %s and unschedulable: %s", p.Name, p.Phase, oneLine(c.Message)))
			}
		}
		for _, e := range p.Events {
			switch e.Reason {
			case "FailedScheduling", "Failed", "Unhealthy", "FailedMount", "FailedCreatePodSandBox", "Evicted", "Preempting":
				if e.Type == "Warning" {
					key = append(key, e.Reason+": "+oneLine(e.Message))
					if e.Reason == "Unhealthy" {
						set(fmt.Sprintf("pod %s: %s", p.Name, oneLine(e.Message)))
					}
				}
			}
		}
		for _, l := range p.Logs {
			if line := fatalLine(l.Text); line != "" {
				key = append(key, fmt.Sprintf("%s log%s: %s", l.Container, map[bool]string{true: " (previous)", false: ""}[l.Previous], line))
			}
		}
	}
	for i := range d.PVCs {
		// A Pending pod's claim that is not Bound: the pod's own
		// condition usually made the headline already.
		if c := &d.PVCs[i]; c.For != "" {
			h := pvcPendingLine(c)
			set(h)
			key = append(key, h)
		}
	}
	for _, w := range d.Workloads {
		for _, c := range w.ImageChanges {
			key = append(key, fmt.Sprintf("%s %s rolled out %s: %s", w.Kind, w.Name, ago(w.LastRollout, now), c))
		}
	}
	if head == "" && len(d.Workloads) > 0 {
		w := d.Workloads[0]
		head = fmt.Sprintf("%s %s/%s: %s", w.Kind, w.Namespace, w.Name, w.Replicas)
	}
	if head == "" && len(d.Pods) > 0 {
		p := d.Pods[0]
		head = fmt.Sprintf("pod %s/%s is %s; nothing abnormal in its status", p.Namespace, p.Name, p.Phase)
	}
	return head, dedupe(key, 6)
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func dedupe(ss []string, n int) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if len(s) > 300 {
			// Cut on a rune boundary: a quote must stay valid UTF-8.
			cut := 300
			for cut > 0 && !utf8.RuneStart(s[cut]) {
				cut--
			}
			s = s[:cut] + "…"
		}
		if !seen[s] && len(out) < n {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// fatalLine returns the last log line that reads like the reason a process
// died, or "".
func fatalLine(text string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		u := strings.ToUpper(l)
		for _, w := range []string{"FATAL", "PANIC", "EXCEPTION", "ERROR", "OUT OF MEMORY", "OOM", "TRACEBACK", "SEGMENTATION FAULT", "CANNOT", "FAILED"} {
			if strings.Contains(u, w) {
				return l
			}
		}
	}
	return ""
}

// size is the evidence's size in bytes: the text plus the JSON of the
// structured fields.
func size(d *envelope.EnrichmentDetail, text string) int {
	b, err := json.Marshal(d)
	if err != nil {
		return len(text)
	}
	return len(b) + len(text)
}

// fit trims the evidence until text plus structured fields fit the budget:
// first the logs of all but the first pod, then long logs, env, events,
// then all logs, then extra pods. It returns the final text.
func fit(d *envelope.EnrichmentDetail, errs []string, budget int, now time.Time) string {
	text := render(d, errs, now)
	steps := []struct {
		what string
		do   func()
	}{
		{"logs of all but the first pod", func() {
			for i := 1; i < len(d.Pods); i++ {
				d.Pods[i].Logs = nil
			}
		}},
		{"log lines beyond the last 10", func() {
			for i := range d.Pods {
				for j := range d.Pods[i].Logs {
					l := &d.Pods[i].Logs[j]
					l.Text, l.Truncated = lastLines(l.Text, 10, l.Truncated)
				}
			}
		}},
		{"environment", func() {
			for i := range d.Pods {
				for j := range d.Pods[i].Containers {
					d.Pods[i].Containers[j].Env = nil
				}
			}
		}},
		{"events beyond the newest 3", func() {
			for i := range d.Pods {
				d.Pods[i].Events = d.Pods[i].Events[:min(3, len(d.Pods[i].Events))]
			}
			for i := range d.Workloads {
				d.Workloads[i].Events = d.Workloads[i].Events[:min(3, len(d.Workloads[i].Events))]
			}
			for i := range d.PVCs {
				d.PVCs[i].Events = d.PVCs[i].Events[:min(3, len(d.PVCs[i].Events))]
			}
			for i := range d.HPAs {
				d.HPAs[i].Events = d.HPAs[i].Events[:min(3, len(d.HPAs[i].Events))]
			}
		}},
		{"log lines beyond the last 3", func() {
			for i := range d.Pods {
				for j := range d.Pods[i].Logs {
					l := &d.Pods[i].Logs[j]
					l.Text, l.Truncated = lastLines(l.Text, 3, l.Truncated)
				}
			}
		}},
		{"all but the first pod", func() {
			if len(d.Pods) > 1 {
				d.Pods = d.Pods[:1]
			}
		}},
		{"the names of further pods", func() {
			for i := range d.Workloads {
				d.Workloads[i].MorePods = d.Workloads[i].MorePods[:min(5, len(d.Workloads[i].MorePods))]
			}
			for i := range d.PVCs {
				d.PVCs[i].UsedBy = d.PVCs[i].UsedBy[:min(5, len(d.PVCs[i].UsedBy))]
			}
		}},
	}
	for _, s := range steps {
		if size(d, text) <= budget {
			break
		}
		s.do()
		d.Trimmed = append(d.Trimmed, s.what)
		text = render(d, errs, now)
	}
	if n := size(d, text); n > budget {
		// Still too big (huge messages): cut the text; the structured
		// fields are bounded by the limits above.
		keep := max(budget-(n-len(text)), budget/4)
		if keep < len(text) {
			text = strings.ToValidUTF8(text[:keep], "") + "\n…(cut to the byte budget)\n"
		}
	}
	d.Bytes = size(d, text)
	return text
}
