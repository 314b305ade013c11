package advisor

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"sort"
	"strings"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// problem is what makes two alerts "the same problem" for the advice cache:
// not the pod (50 crashing replicas are one problem) and not the repeat.
type problem struct {
	AlertName, Namespace, Workload, Container, Reason string
}

func (p problem) String() string {
	return strings.Join([]string{p.AlertName, p.Namespace, p.Workload, p.Container, p.Reason}, "/")
}

// Pod names of controllers: <deployment>-<replicaset hash>-<5>,
// <statefulset>-<ordinal>, <daemonset or job>-<5>.
var (
	podOfReplicaSet  = regexp.MustCompile(`^(.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`)
	podOfStatefulSet = regexp.MustCompile(`^(.+)-\d+$`)
	podOfDaemonSet   = regexp.MustCompile(`^(.+)-[bcdfghjklmnpqrstvwxz2456789]{5}$`)
	replicaSetName   = regexp.MustCompile(`^(.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}$`)
)

// workloadOf names the owning workload from an alert's labels: an explicit
// workload label when kube-state-metrics or a recording rule gave one, else
// the pod name without its generated suffix.
func workloadOf(l map[string]string) string {
	for _, k := range []string{"workload", "deployment", "statefulset", "daemonset", "cronjob", "job_name", "owner_name"} {
		if v := l[k]; v != "" {
			return k + ":" + v
		}
	}
	if rs := l["replicaset"]; rs != "" {
		if m := replicaSetName.FindStringSubmatch(rs); m != nil {
			return "deployment:" + m[1]
		}
		return "replicaset:" + rs
	}
	if pod := l["pod"]; pod != "" {
		for _, re := range []*regexp.Regexp{podOfReplicaSet, podOfStatefulSet, podOfDaemonSet} {
			if m := re.FindStringSubmatch(pod); m != nil {
				return "pod-of:" + m[1]
			}
		}
		return "pod:" + pod
	}
	for _, k := range []string{"service", "node", "persistentvolumeclaim", "job", "instance"} {
		if v := l[k]; v != "" {
			return k + ":" + v
		}
	}
	return ""
}

// problemsOf lists the distinct problems of the notification's firing
// alerts (all alerts when none fires).
func problemsOf(env *envelope.Envelope) []problem {
	seen := map[problem]bool{}
	var out []problem
	var detail *envelope.EnrichmentDetail
	if env.Enrichment != nil {
		detail = env.Enrichment.Detail
	}
	add := func(a envelope.Alert) {
		l := a.Labels
		p := problem{
			AlertName: l["alertname"], Namespace: l["namespace"], Workload: workloadOf(l),
			Container: l["container"], Reason: l["reason"],
		}
		refine(&p, l, detail)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, a := range env.Notification.Alerts {
		if a.Firing() {
			add(a)
		}
	}
	if len(out) == 0 {
		for _, a := range env.Notification.Alerts {
			add(a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// cacheKey is the advice cache key of a notification: a hash of its
// problems, the backend, the model and the prompt version. It is a valid KV
// key (hex).
func cacheKey(env *envelope.Envelope, backend, model string) string {
	h := sha256.New()
	for _, s := range []string{PromptVersion, backend, model} {
		h.Write([]byte(s))
		h.Write([]byte{0x1f})
	}
	for _, p := range problemsOf(env) {
		h.Write([]byte(p.String()))
		h.Write([]byte{0x1e})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// refine sharpens a problem with the enricher's structured evidence: the
// pod's real owner instead of a name guess, and the container's last
// termination reason (OOMKilled and Error are different problems even when
// both show as CrashLoopBackOff). The last termination reason is stable
// across repeats, unlike the waiting state.
func refine(p *problem, l map[string]string, d *envelope.EnrichmentDetail) {
	if d == nil || l["pod"] == "" {
		return
	}
	for _, pod := range d.Pods {
		if pod.Name != l["pod"] || (l["namespace"] != "" && pod.Namespace != l["namespace"]) {
			continue
		}
		if w := ownerOf(pod.Owner, d); w != "" && !strings.HasPrefix(p.Workload, "workload:") {
			p.Workload = w
		}
		for _, c := range pod.Containers {
			if p.Container != "" && c.Name != p.Container {
				continue
			}
			for _, st := range []*envelope.ContainerState{c.LastState, c.State} {
				if st != nil && st.State == "terminated" && st.Reason != "" {
					p.Reason += "/" + st.Reason
					return
				}
			}
		}
		return
	}
}

// ownerOf resolves "ReplicaSet/api-7d9f8b6c5d" to its Deployment through the
// enricher's workload chain.
func ownerOf(owner string, d *envelope.EnrichmentDetail) string {
	kind, name, ok := strings.Cut(owner, "/")
	if !ok || name == "" {
		return ""
	}
	for _, w := range d.Workloads {
		if w.Kind == kind && w.Name == name && w.Parent != "" {
			kind, name, _ = strings.Cut(w.Parent, "/")
			break
		}
	}
	if kind == "ReplicaSet" {
		if m := replicaSetName.FindStringSubmatch(name); m != nil {
			kind, name = "Deployment", m[1]
		}
	}
	return "pod-of:" + name + "(" + strings.ToLower(kind) + ")"
}
