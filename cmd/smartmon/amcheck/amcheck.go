// Package amcheck implements `smartmon am-check`: it loads an Alertmanager
// configuration with Alertmanager's own config package, walks its route tree
// the way Alertmanager's dispatcher does, and reports whether alerts reach a
// receiver that posts to our ingest, plus the routing mistakes that make a
// webhook integration silently deliver nothing (or everything).
//
// It lives in its own package because Alertmanager's config package pulls in
// a large dependency tree (AWS SDK and more): only the smartmon binary, never
// the services, should link it.
package amcheck

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/common/model"
)

// IngestPath is the path ingest serves Alertmanager's webhook on.
const IngestPath = "/api/v1/alerts"

// Severity ranks a finding: problems make am-check exit 1, notes do not.
type Severity int

const (
	// Problem means alerts will be lost, duplicated into chat or rejected.
	Problem Severity = iota
	// Note is worth knowing but does not by itself break delivery.
	Note
)

// String names the severity as printed in the report.
func (s Severity) String() string {
	if s == Problem {
		return "PROBLEM"
	}
	return "NOTE"
}

// Finding is one thing am-check wants the operator to know.
type Finding struct {
	Severity Severity
	// Code is a stable short name, so scripts and tests need not match text.
	Code    string
	Message string
}

// Endpoint is one webhook_config of a receiver.
type Endpoint struct {
	Receiver string
	// URL is the webhook target with user info and query removed (they may
	// hold secrets), or "url_file <path>" when the URL is read from a file.
	URL string
	// Ingest reports whether the endpoint posts to our ingest.
	Ingest bool
	// Suspect reports a webhook that looks meant for us but uses another path.
	Suspect      bool
	Auth         string
	SendResolved bool
}

// Delivery is where one alert ends up.
type Delivery struct {
	Alert model.LabelSet
	// Routes are the matching route paths, e.g. "route.routes[1]".
	Routes []string
	// Receivers are the receivers of those routes, in the same order.
	Receivers []string
	// Ingest reports whether at least one of the receivers posts to ingest.
	Ingest bool
}

// Options tune a check.
type Options struct {
	// Alerts to route; empty checks the structure only.
	Alerts []model.LabelSet
	// IngestURL, when set, also requires the webhook's host to match it.
	IngestURL *url.URL
}

// Report is the outcome of Check.
type Report struct {
	Endpoints  []Endpoint
	Deliveries []Delivery
	Findings   []Finding
}

// Problems counts the findings of severity Problem.
func (r *Report) Problems() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == Problem {
			n++
		}
	}
	return n
}

// Has reports whether a finding with the code is present, for tests and
// scripts.
func (r *Report) Has(code string) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Code == code })
}

func (r *Report) add(sev Severity, code, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Code: code, Message: fmt.Sprintf(format, args...)})
}

// probeAlerts are alerts nobody should route to smartmon: if one of them
// reaches ingest through a non-root route, that route's matchers also catch
// everything else. Watchdog is the always-firing heartbeat of
// kube-prometheus-stack; the second one carries no label but its name.
func probeAlerts() []model.LabelSet {
	return []model.LabelSet{
		{model.AlertNameLabel: "Watchdog", "severity": "none"},
		{model.AlertNameLabel: "AmCheckUnrelatedProbe"},
	}
}

// Check inspects a loaded configuration.
func Check(cfg *config.Config, opts Options) Report {
	var rep Report
	ingestReceivers := map[string]bool{}
	for _, rcv := range cfg.Receivers {
		for _, wh := range rcv.WebhookConfigs {
			ep := endpoint(rcv.Name, wh, opts.IngestURL)
			rep.Endpoints = append(rep.Endpoints, ep)
			if ep.Ingest {
				ingestReceivers[rcv.Name] = true
			}
			checkEndpoint(&rep, ep, wh)
		}
	}

	root := dispatch.NewRoute(cfg.Route, nil)
	paths := routePaths(root)

	if len(ingestReceivers) == 0 {
		rep.add(Problem, "no-ingest-receiver",
			"no receiver has a webhook_config posting to ingest (a URL ending in %s): nothing reaches smartmon", IngestPath)
	}
	if ingestReceivers[root.RouteOpts.Receiver] {
		rep.add(Problem, "no-catch-all",
			"the root route's default receiver %q posts to ingest: every alert no child route takes is sent to smartmon; "+
				"make the root receiver a catch-all that is not ours (e.g. receivers: [{name: 'null'}]) and route the chosen alerts to %q with matchers",
			root.RouteOpts.Receiver, root.RouteOpts.Receiver)
	}
	if len(ingestReceivers) > 0 && !reachable(root, ingestReceivers) {
		rep.add(Problem, "ingest-unreachable", "no route uses a receiver that posts to ingest (%s)", strings.Join(sortedKeys(ingestReceivers), ", "))
	}

	for _, probe := range probeAlerts() {
		for _, r := range root.Match(probe) {
			if r != root && ingestReceivers[r.RouteOpts.Receiver] {
				rep.add(Problem, "catches-everything",
					"route %s (matchers %s) sends %s to ingest: its matchers also catch alerts that have nothing to do with it; "+
						"match on alertname, severity or a label your rules set, with = or =~ and a non-empty value",
					paths[r], matchersString(r), probe)
				break
			}
		}
	}

	for _, alert := range opts.Alerts {
		d := Delivery{Alert: alert}
		for _, r := range root.Match(alert) {
			d.Routes = append(d.Routes, paths[r])
			d.Receivers = append(d.Receivers, r.RouteOpts.Receiver)
			if ingestReceivers[r.RouteOpts.Receiver] {
				d.Ingest = true
			}
		}
		rep.Deliveries = append(rep.Deliveries, d)
		if !d.Ingest {
			rep.add(Problem, "alert-not-delivered",
				"alert %s does not reach ingest: it matches %s and goes to %s; an earlier sibling route without `continue: true` may take it, or the matchers of the smartmon route do not match it",
				alert, strings.Join(d.Routes, ", "), quoteAll(d.Receivers))
		}
	}
	return rep
}

// endpoint describes a webhook config and decides whether it is ours.
func endpoint(receiver string, wh *webhook.WebhookConfig, want *url.URL) Endpoint {
	ep := Endpoint{Receiver: receiver, SendResolved: wh.SendResolved(), Auth: authKind(wh)}
	if wh.URLFile != "" {
		ep.URL = "url_file " + wh.URLFile
		// The path cannot be checked; trust the receiver's name.
		ep.Ingest = looksOurs(receiver, nil)
		return ep
	}
	u, err := url.Parse(string(wh.URL))
	if err != nil || u.Host == "" {
		ep.URL = "(unparsable or templated URL)"
		return ep
	}
	ep.URL = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	pathOK := strings.TrimSuffix(u.Path, "/") == IngestPath
	hostOK := want == nil || strings.EqualFold(u.Host, want.Host)
	ep.Ingest = pathOK && hostOK
	ep.Suspect = !pathOK && (looksOurs(receiver, u) || (want != nil && strings.EqualFold(u.Host, want.Host)))
	return ep
}

// looksOurs guesses from names and the default port whether a webhook was
// meant for smartmon.
func looksOurs(receiver string, u *url.URL) bool {
	hay := strings.ToLower(receiver)
	if u != nil {
		hay += " " + strings.ToLower(u.Host)
		if _, port, err := net.SplitHostPort(u.Host); err == nil && port == "9095" {
			return true
		}
	}
	return strings.Contains(hay, "smartmon") || strings.Contains(hay, "smart-k8s-monitor")
}

func authKind(wh *webhook.WebhookConfig) string {
	h := wh.HTTPConfig
	switch {
	case h == nil:
		return ""
	case h.Authorization != nil && (h.Authorization.Credentials != "" || h.Authorization.CredentialsFile != "" || h.Authorization.CredentialsRef != ""):
		t := h.Authorization.Type
		if t == "" {
			t = "Bearer"
		}
		return t
	case h.BearerToken != "" || h.BearerTokenFile != "":
		return "Bearer"
	case h.BasicAuth != nil:
		return "basic"
	case h.OAuth2 != nil:
		return "oauth2"
	}
	return ""
}

func checkEndpoint(rep *Report, ep Endpoint, wh *webhook.WebhookConfig) {
	if ep.Suspect {
		rep.add(Problem, "wrong-path",
			"receiver %q posts to %s, which looks like smartmon but is not its webhook path %s: ingest answers 404 and Alertmanager drops the notification",
			ep.Receiver, ep.URL, IngestPath)
	}
	if !ep.Ingest {
		return
	}
	if strings.HasPrefix(ep.URL, "url_file ") {
		rep.add(Note, "url-file", "receiver %q reads its URL from %s: make sure it ends in %s", ep.Receiver, strings.TrimPrefix(ep.URL, "url_file "), IngestPath)
	}
	if ep.Auth == "" {
		rep.add(Problem, "no-auth",
			"receiver %q posts to ingest without credentials: ingest answers 401 (Alertmanager does not retry 4xx); "+
				"add http_config.authorization {type: Bearer, credentials_file: ...} with the ingest token",
			ep.Receiver)
	}
	if !ep.SendResolved {
		rep.add(Problem, "send-resolved-off",
			"receiver %q has send_resolved: false: smartmon never learns that an alert resolved, so chat keeps showing it as firing",
			ep.Receiver)
	}
	if ep.URL != "" && strings.HasPrefix(ep.URL, "http://") && !isClusterLocal(ep.URL) {
		rep.add(Note, "plain-http", "receiver %q sends the bearer token over plain http to %s", ep.Receiver, ep.URL)
	}
	if wh.MaxAlerts > 0 {
		rep.add(Note, "max-alerts", "receiver %q truncates groups to %d alerts (smartmon shows \"+N more\")", ep.Receiver, wh.MaxAlerts)
	}
}

// isClusterLocal treats in-cluster service names and loopback as private
// enough for plain http.
func isClusterLocal(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); ip != nil {
		return ip.IsLoopback() || ip.IsPrivate()
	}
	return h == "localhost" || !strings.Contains(h, ".") || strings.HasSuffix(h, ".svc") ||
		strings.HasSuffix(h, ".svc.cluster.local") || strings.Count(h, ".") == 1
}

// reachable reports whether any route of the tree uses one of the receivers.
func reachable(root *dispatch.Route, receivers map[string]bool) bool {
	found := false
	root.Walk(func(r *dispatch.Route) {
		if receivers[r.RouteOpts.Receiver] {
			found = true
		}
	})
	return found
}

// routePaths names every route by its position in the YAML, which is what
// the operator edits.
func routePaths(root *dispatch.Route) map[*dispatch.Route]string {
	paths := map[*dispatch.Route]string{}
	var walk func(r *dispatch.Route, p string)
	walk = func(r *dispatch.Route, p string) {
		paths[r] = p
		for i, c := range r.Routes {
			walk(c, fmt.Sprintf("%s.routes[%d]", p, i))
		}
	}
	walk(root, "route")
	return paths
}

func matchersString(r *dispatch.Route) string {
	if len(r.Matchers) == 0 {
		return "{} (none)"
	}
	return r.Matchers.String()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
