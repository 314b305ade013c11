package notifier

import (
	"fmt"
	"maps"

	amlabels "github.com/prometheus/alertmanager/pkg/labels"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// Router picks the sinks of a notification. It reuses Alertmanager's own
// matcher parser, so operators write the matchers they already know.
type Router struct {
	routes []route
	def    route
}

type route struct {
	matchers     amlabels.Matchers
	sinks        []string
	cont         bool
	sendResolved bool
}

// NewRouter compiles the routes; all is every sink name, the default
// route's sinks when it names none.
func NewRouter(routes []RouteConfig, def RouteConfig, all []string) (*Router, error) {
	r := &Router{}
	for i, rc := range routes {
		cr, err := compile(rc)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		r.routes = append(r.routes, cr)
	}
	d, err := compile(def)
	if err != nil {
		return nil, fmt.Errorf("default_route: %w", err)
	}
	if len(d.sinks) == 0 {
		d.sinks = all
	}
	r.def = d
	return r, nil
}

func compile(rc RouteConfig) (route, error) {
	out := route{sinks: rc.Sinks, cont: rc.Continue, sendResolved: rc.SendResolved == nil || *rc.SendResolved}
	for _, s := range rc.Matchers {
		ms, err := amlabels.ParseMatchers(s)
		if err != nil {
			return out, fmt.Errorf("matchers %q: %w", s, err)
		}
		out.matchers = append(out.matchers, ms...)
	}
	return out, nil
}

// Labels are what routes match on: the group's common labels and group
// labels, or the first alert's labels when the group shares none.
func Labels(env *envelope.Envelope) map[string]string {
	n := &env.Notification
	l := map[string]string{}
	if len(n.CommonLabels) == 0 && len(n.Alerts) > 0 {
		maps.Copy(l, n.Alerts[0].Labels)
	}
	maps.Copy(l, n.GroupLabels)
	maps.Copy(l, n.CommonLabels)
	return l
}

// Route returns the sinks for env, each once, in route order.
func (r *Router) Route(env *envelope.Envelope) []string {
	return r.Match(Labels(env), !env.Firing())
}

// Match is Route on a label set.
func (r *Router) Match(labels map[string]string, resolved bool) []string {
	var out []string
	seen := map[string]bool{}
	take := func(rt route) {
		if resolved && !rt.sendResolved {
			return
		}
		for _, s := range rt.sinks {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	matched := false
	for _, rt := range r.routes {
		if !matches(rt.matchers, labels) {
			continue
		}
		matched = true
		take(rt)
		if !rt.cont {
			break
		}
	}
	if !matched {
		take(r.def)
	}
	return out
}

func matches(ms amlabels.Matchers, labels map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(labels[m.Name]) {
			return false
		}
	}
	return true
}
