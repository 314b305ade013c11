// Package message turns an envelope into the platform-neutral content of a
// chat message (title, status, fields, advice, evidence, pods, links), the
// one place that decides what an on-call person reads. The sinks only lay it
// out within their platform's limits and escape it for their markup. Texts
// here are cleaned of control characters but not escaped: escaping is the
// sink's job, because each platform's markup differs.
package message

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// Kind says why a message is sent.
type Kind string

// Kinds.
const (
	// KindNotify is the notification itself (firing, alerts joined, or
	// resolved).
	KindNotify Kind = "notify"
	// KindFollowup carries advice that arrived after the notification was
	// posted without it.
	KindFollowup Kind = "followup"
)

// Request is what a sink is asked to deliver.
type Request struct {
	Env  *envelope.Envelope
	Msg  *Message
	Kind Kind
	// MessageID is the platform id of this incident's living message on
	// this sink, "" if none: Discord edits it instead of posting anew.
	MessageID string
}

// Result is what a sink delivered.
type Result struct {
	// MessageID of the posted or edited message, "" when the platform
	// gives none (Slack and Teams incoming webhooks, console, webhook).
	MessageID string
	// Edited is true when an existing message was changed in place.
	Edited bool
}

// Notifier is one destination. Sinks are small packages that implement it;
// they share the HTTP and retry handling of pkg/httpx.
type Notifier interface {
	Notify(ctx context.Context, r Request) (Result, error)
}

// Field is a short name/value pair (namespace, workload, reason).
type Field struct {
	Name  string
	Value string
}

// Link is a URL we checked to be http(s).
type Link struct {
	Text string
	URL  string
}

// Step is one suggested command.
type Step struct {
	Command string
	Why     string
	Risky   bool
}

// Advice is the model's answer, ready to show.
type Advice struct {
	Summary     string
	LikelyCause string
	Confidence  string
	Evidence    []string
	Steps       []Step
	// Text is set instead of the fields above when the model did not
	// answer in the structured shape.
	Text string
	// Truncated is true when the model hit its token cap.
	Truncated bool
	// Footer is "advice by mistral · 4.2 s · cached".
	Footer string
}

// Message is the content of one notification.
type Message struct {
	ID        string
	Firing    bool
	Emoji     string
	Status    string // FIRING or RESOLVED
	AlertName string
	// Subject is the workload or target, with the pod count for groups:
	// "payments-api (3 pods)".
	Subject string
	// Target is namespace/pod (or namespace/workload for groups), for the
	// one-line console header.
	Target   string
	Severity string
	Color    int
	// Context is "payments / Deployment payments-api".
	Context string
	// Headline is the enricher's one line ("container api restarted ...").
	Headline string
	// Summary is the alert's own summary or description annotation.
	Summary string
	Fields  []Field
	Advice  *Advice
	// AdviceNote explains missing advice ("advice unavailable: ...").
	AdviceNote string
	// Evidence is the enricher's key evidence, and the reason it has none.
	Evidence []string
	// Items lists the group's alerts (pods), first ones only; More counts
	// those not listed (including Alertmanager's truncatedAlerts).
	Items []string
	More  int
	// Alerts is the number of alerts in the group, Resolved how many of
	// them are resolved.
	Alerts   int
	Resolved int
	Links    []Link
	// Lasted is how long a resolved incident lasted (0 if unknown).
	Lasted time.Duration
	// Trace is the command that shows this notification's path.
	Trace string
}

// Colours by status and severity (Discord takes an integer RGB).
const (
	ColorCritical = 0xE01E5A
	ColorWarning  = 0xF2A900
	ColorInfo     = 0x3B82F6
	ColorResolved = 0x2EB67D
)

// maxListed bounds evidence lines and steps taken from one envelope.
const maxListed = 20

// MaxItems is how many alerts of a group are listed by name.
const MaxItems = 10

// Title is "🔥 KubePodCrashLooping — payments-api (3 pods)", or for a
// resolved incident "✅ RESOLVED after 23 min — KubePodCrashLooping — ...".
func (m *Message) Title() string {
	head := m.Emoji + " "
	if !m.Firing {
		head += "RESOLVED"
		if m.Lasted > 0 {
			head += " after " + HumanDuration(m.Lasted)
		}
		head += " — "
	}
	t := head + m.AlertName
	if m.Subject != "" {
		t += " — " + m.Subject
	}
	return t
}

// TitleFor is Title, or for a follow-up, which only carries late advice,
// "💡 Advice: KubePodCrashLooping — payments-api (3 pods)".
func (m *Message) TitleFor(kind Kind) string {
	if kind == KindFollowup {
		return "💡 Advice: " + m.AlertName + " — " + m.Subject
	}
	return m.Title()
}

// Build makes the message for env. deadline is the advice deadline, used in
// the note of an alert whose advice never came.
func Build(env *envelope.Envelope) *Message {
	n := &env.Notification
	m := &Message{ID: env.ID, Firing: env.Firing(), Alerts: len(n.Alerts) + n.TruncatedAlerts}
	m.AlertName = Clean(env.AlertName(), false)
	if m.AlertName == "" {
		m.AlertName = "alert"
		if names := distinct(n.Alerts, "alertname"); len(names) > 1 {
			m.AlertName = strconv.Itoa(len(names)) + " alerts"
		}
	}
	m.Severity = Clean(env.Severity(), false)
	for _, a := range n.Alerts {
		if !a.Firing() {
			m.Resolved++
		}
	}
	switch {
	case !m.Firing:
		m.Emoji, m.Status, m.Color = "✅", "RESOLVED", ColorResolved
		m.Lasted = lasted(env)
	case m.Severity == "critical" || m.Severity == "page" || m.Severity == "error":
		m.Emoji, m.Status, m.Color = "🔥", "FIRING", ColorCritical
	case m.Severity == "warning":
		m.Emoji, m.Status, m.Color = "⚠️", "FIRING", ColorWarning
	default:
		m.Emoji, m.Status, m.Color = "🔔", "FIRING", ColorInfo
	}

	ns := Clean(env.Label("namespace"), false)
	kind, workload := Workload(env)
	pods := distinct(n.Alerts, "pod")
	switch {
	case workload != "":
		m.Subject = workload
	case len(pods) == 1:
		m.Subject = pods[0]
	default:
		m.Subject = Clean(firstOf(env, "service", "job", "instance", "node"), false)
	}
	if len(pods) > 1 {
		m.Subject += fmt.Sprintf(" (%d pods)", len(pods)+n.TruncatedAlerts)
	} else if len(n.Alerts) > 1 {
		m.Subject += fmt.Sprintf(" (%d alerts)", m.Alerts)
	}
	m.Subject = strings.TrimSpace(m.Subject)
	target := workload
	if len(pods) == 1 {
		target = pods[0]
	}
	if target == "" {
		target = m.Subject
	}
	m.Target = joinNonEmpty("/", ns, target)
	if len(pods) > 1 {
		m.Target += fmt.Sprintf(" (%d pods)", len(pods)+n.TruncatedAlerts)
	}
	if kind != "" {
		m.Context = joinNonEmpty(" / ", ns, kind+" "+workload)
	} else {
		m.Context = ns
	}

	m.Summary = Clean(firstAnnotation(env, "summary", "description", "message"), true)
	if e := env.Enrichment; e != nil {
		m.Headline = Clean(e.Headline, false)
		for i, ev := range e.KeyEvidence {
			if i == maxListed {
				break
			}
			if ev = Clean(ev, false); ev != "" {
				m.Evidence = append(m.Evidence, ev)
			}
		}
		if !e.ClusterAccess && e.Unavailable != "" {
			m.Evidence = append(m.Evidence, Clean(e.Unavailable, false))
		}
	}

	m.Fields = fields(env, ns, kind, workload, pods)
	m.Items, m.More = items(n)
	m.Advice, m.AdviceNote = advice(env)
	if m.Advice != nil {
		// The model often quotes the headline back; it is already shown.
		m.Advice.Evidence = slices.DeleteFunc(m.Advice.Evidence, func(e string) bool { return e == m.Headline })
	}
	m.Links = links(env)
	m.Trace = "smartmon trace " + env.ID
	return m
}

func fields(env *envelope.Envelope, ns, kind, workload string, pods []string) []Field {
	var f []Field
	add := func(name, v string) {
		if v = Clean(v, false); v != "" {
			f = append(f, Field{Name: name, Value: v})
		}
	}
	add("Namespace", ns)
	if workload != "" {
		add("Workload", strings.TrimSpace(kind+" "+workload))
	}
	if len(pods) == 1 {
		add("Pod", pods[0])
	}
	add("Container", env.Label("container"))
	add("Reason", env.Label("reason"))
	if r := env.Label("restarts"); r != "" {
		add("Restarts", r)
	} else if n, ok := restarts(env); ok {
		add("Restarts", strconv.Itoa(int(n)))
	}
	add("Severity", env.Severity())
	return f
}

// restarts is the highest restart count among the gathered pods' containers
// (only the alert's container when it names one).
func restarts(env *envelope.Envelope) (int32, bool) {
	e := env.Enrichment
	if e == nil || e.Detail == nil {
		return 0, false
	}
	want := env.Label("container")
	var best int32
	found := false
	for _, p := range e.Detail.Pods {
		for _, c := range p.Containers {
			if c.Init || (want != "" && c.Name != want) {
				continue
			}
			if !found || c.RestartCount > best {
				best, found = c.RestartCount, true
			}
		}
	}
	return best, found
}

func advice(env *envelope.Envelope) (*Advice, string) {
	a := env.Advice
	if !a.Available() {
		if !env.Firing() {
			return nil, "" // resolved: no advice is expected
		}
		switch {
		case a == nil:
			return nil, "advice pending"
		case a.Status == envelope.AdviceSkipped:
			if a.Reason == "" {
				return nil, ""
			}
			return nil, "advice skipped: " + Clean(a.Reason, false)
		default:
			r := a.Reason
			if r == "" {
				r = "no reason given"
			}
			return nil, "advice unavailable: " + Clean(r, false)
		}
	}
	out := &Advice{Truncated: a.Truncated}
	if s := a.Structured; s != nil {
		out.Summary = Clean(s.Summary, true)
		out.LikelyCause = Clean(s.LikelyCause, true)
		out.Confidence = Clean(s.Confidence, false)
		for i, e := range s.Evidence {
			if i == maxListed {
				break
			}
			if e = Clean(e, false); e != "" {
				out.Evidence = append(out.Evidence, e)
			}
		}
		for i, st := range s.NextSteps {
			if i == maxListed {
				break
			}
			if c := Clean(st.Command, false); c != "" {
				out.Steps = append(out.Steps, Step{Command: c, Why: Clean(st.Why, false), Risky: st.Risky})
			}
		}
	} else {
		out.Text = Clean(a.Text, true)
	}
	var foot []string
	if a.Model != "" {
		foot = append(foot, "advice by "+Clean(a.Model, false))
	}
	if a.Duration > 0 {
		foot = append(foot, fmt.Sprintf("%.1f s", a.Duration.Seconds()))
	}
	if a.Cached {
		foot = append(foot, "cached")
	}
	if a.Late {
		foot = append(foot, "arrived late")
	}
	out.Footer = strings.Join(foot, " · ")
	return out, ""
}

func items(n *envelope.Webhook) ([]string, int) {
	names := make([]string, 0, len(n.Alerts))
	prefix := ""
	for _, a := range n.Alerts {
		name := Clean(cmp.Or(a.Labels["pod"], a.Labels["instance"], a.Labels["alertname"], a.Fingerprint), false)
		if prefix != "" && strings.HasPrefix(name, prefix) && len(name) > len(prefix) {
			name = "…-" + name[len(prefix):]
		} else if prefix == "" {
			prefix = podPrefix(name)
		}
		if !a.Firing() && n.Status == envelope.StatusFiring {
			name += " (resolved)"
		}
		names = append(names, name)
	}
	if len(names) <= MaxItems {
		return names, n.TruncatedAlerts
	}
	return names[:MaxItems], len(names) - MaxItems + n.TruncatedAlerts
}

// podPrefix is "payments-api-7d9f8b6c5-" for a ReplicaSet pod name, so the
// following pods of a group can be written "…-q8m2p".
func podPrefix(pod string) string {
	i := strings.LastIndexByte(pod, '-')
	if i <= 0 {
		return ""
	}
	return pod[:i+1]
}

var (
	rsPod  = regexp.MustCompile(`^(.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$`)
	stsPod = regexp.MustCompile(`^(.+)-[0-9]+$`)
	dsPod  = regexp.MustCompile(`^(.+)-[a-z0-9]{5}$`)
)

// Workload finds the workload (kind, name) from labels kube-state-metrics
// and common rules set, else from the pod name's shape.
func Workload(env *envelope.Envelope) (kind, name string) {
	for _, c := range []struct{ label, kind string }{
		{"deployment", "Deployment"},
		{"statefulset", "StatefulSet"},
		{"daemonset", "DaemonSet"},
		{"job_name", "Job"},
		{"cronjob", "CronJob"},
		{"workload", ""},
	} {
		if v := Clean(env.Label(c.label), false); v != "" {
			return c.kind, v
		}
	}
	pod := env.Label("pod")
	if pod == "" {
		return "", ""
	}
	if m := rsPod.FindStringSubmatch(pod); m != nil {
		return "Deployment", Clean(m[1], false)
	}
	if m := stsPod.FindStringSubmatch(pod); m != nil {
		return "StatefulSet", Clean(m[1], false)
	}
	if m := dsPod.FindStringSubmatch(pod); m != nil {
		return "", Clean(m[1], false)
	}
	return "", ""
}

func links(env *envelope.Envelope) []Link {
	var out []Link
	add := func(text, u string) {
		if u = SafeURL(u); u != "" {
			out = append(out, Link{Text: text, URL: u})
		}
	}
	add("Runbook", firstAnnotation(env, "runbook_url", "runbook"))
	n := &env.Notification
	if base := SafeURL(n.ExternalURL); base != "" {
		q := url.Values{}
		if n.Receiver != "" {
			q.Set("receiver", n.Receiver)
		}
		if name := env.AlertName(); name != "" {
			q.Set("filter", fmt.Sprintf("{alertname=%q}", name))
		}
		add("Alertmanager", strings.TrimRight(base, "/")+"/#/alerts?"+q.Encode())
	}
	for _, a := range n.Alerts {
		if a.GeneratorURL != "" {
			add("Prometheus", a.GeneratorURL)
			break
		}
	}
	return out
}

// maxURL bounds a link; longer ones (a Prometheus expression can be huge)
// are left out rather than cut into something broken.
const maxURL = 1000

// SafeURL returns u if it is an absolute http(s) URL of sane length, else
// "": a javascript: or data: link in an annotation must not become a button.
func SafeURL(u string) string {
	u = strings.TrimSpace(u)
	if u == "" || len(u) > maxURL {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	return p.String()
}

func lasted(env *envelope.Envelope) time.Duration {
	var start, end time.Time
	for _, a := range env.Notification.Alerts {
		if !a.StartsAt.IsZero() && (start.IsZero() || a.StartsAt.Before(start)) {
			start = a.StartsAt
		}
		if a.HasEnd() && a.EndsAt.After(end) {
			end = a.EndsAt
		}
	}
	if end.IsZero() {
		end = env.ReceivedAt
	}
	if start.IsZero() || !end.After(start) {
		return 0
	}
	return end.Sub(start)
}

// HumanDuration is "42 s", "23 min", "2 h 5 min", "3 d 4 h".
func HumanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 24*time.Hour:
		h := int(d.Hours())
		if mins := int(d.Minutes()) - h*60; mins > 0 {
			return fmt.Sprintf("%d h %d min", h, mins)
		}
		return fmt.Sprintf("%d h", h)
	default:
		days := int(d.Hours()) / 24
		if h := int(d.Hours()) - days*24; h > 0 {
			return fmt.Sprintf("%d d %d h", days, h)
		}
		return fmt.Sprintf("%d d", days)
	}
}

func distinct(alerts []envelope.Alert, label string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range alerts {
		if v := Clean(a.Labels[label], false); v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func firstOf(env *envelope.Envelope, labels ...string) string {
	for _, l := range labels {
		if v := env.Label(l); v != "" {
			return v
		}
	}
	return ""
}

func firstAnnotation(env *envelope.Envelope, names ...string) string {
	for _, n := range names {
		if v := env.Annotation(n); v != "" {
			return v
		}
	}
	return ""
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
