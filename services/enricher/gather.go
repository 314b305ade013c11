package enricher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact"
)

// Gatherer collects the evidence for one notification. It is safe for
// concurrent use; each Gather call keeps its own state.
type Gatherer struct {
	cfg  Config
	kc   kubernetes.Interface
	logs LogSource
	red  *redact.Redactor
	now  func() time.Time
	// used, when set, is told every permission a call needs (tests).
	used func(need)
}

// NewGatherer builds a Gatherer. cfg must have its defaults applied.
func NewGatherer(cfg Config, kc kubernetes.Interface, logs LogSource, red *redact.Redactor) *Gatherer {
	if logs == nil {
		logs = APILogs{Client: kc}
	}
	return &Gatherer{cfg: cfg, kc: kc, logs: logs, red: red, now: time.Now}
}

// Result is what Gather found.
type Result struct {
	Detail envelope.EnrichmentDetail
	// Errors are per-lookup problems, already redacted.
	Errors []string
	// Transient is non-nil when a timeout or server error left evidence
	// out; retrying may fill it in.
	Transient error
	Counts    redact.Counts
}

// gather is the state of one Gather call.
type gather struct {
	g      *Gatherer
	res    *Result
	seen   map[string]bool // errors recorded once
	nodes  []string
	nodeOK map[string]bool
	wl     map[string]*envelope.WorkloadEvidence
	wls    []*envelope.WorkloadEvidence
	// selectors of the workloads fetched, by Kind/namespace/name.
	selectors map[string]string
	// container is the alert's container label by namespace/pod: its
	// log is read even when it looks healthy.
	container map[string]string
	// gone are the alert pods that no longer exist, by namespace/pod.
	gone map[string]bool
	// missing are the workloads that answered 404, by Kind/namespace/name
	// (an autoscaler's scale target may be gone).
	missing map[string]bool
	// detailed are the pods gathered in detail, by namespace/pod: a pod
	// reached both from the alert and from a claim it mounts is shown once.
	detailed map[string]bool
	// pvcs are the claims gathered, by namespace/name.
	pvcs map[string]bool
	// nsPods caches one LIST of a namespace's pods for finding the pods
	// that mount a claim; several claims in a namespace share it.
	nsPods map[string]*nsPodList
	// classes caches StorageClass lookups by name.
	classes map[string]*bool
	// cronJobs caches the Parent of Jobs by their CronJob's namespace/name.
	cronJobs map[string]string
	// claimPods counts the pods detailed because they mount an alert's
	// claim, across all claims (at most cfg.PodsInDetail).
	claimPods int
}

// target is what the alerts point at, from kube-state-metrics style labels.
type target struct {
	pods      map[string][]string // namespace -> pod names, in alert order
	container map[string]string   // namespace/pod -> the alert's container label
	nsOrder   []string
	workloads []workloadRef
	nodes     []string
	// podWorkload is the workload an alert names beside its pod, by
	// namespace/pod: looked at when the pod is gone (a rollout replaced
	// it), so the evidence still shows the workload and its new pods.
	podWorkload map[string]workloadRef
	// pvcs and hpas are the claims and autoscalers the alerts name, at
	// most maxTargetPVCs and maxTargetHPAs; the rest are named in morePVCs
	// and moreHPAs.
	pvcs, hpas         []objRef
	morePVCs, moreHPAs []string
}

// objRef is a namespaced object the alerts name.
type objRef struct{ namespace, name string }

func (o objRef) String() string { return o.namespace + "/" + o.name }

type workloadRef struct{ kind, namespace, name string }

func (w workloadRef) key() string { return w.kind + "/" + w.namespace + "/" + w.name }

// Label names kube-state-metrics and common rules use.
var (
	namespaceLabels = []string{"namespace", "exported_namespace"}
	podLabels       = []string{"pod", "exported_pod", "pod_name"}
	nodeLabels      = []string{"node", "kubernetes_node"}
	workloadLabels  = []struct{ label, kind string }{
		{"deployment", "Deployment"},
		{"statefulset", "StatefulSet"},
		{"daemonset", "DaemonSet"},
		{"job_name", "Job"},
		{"job", "Job"},
		{"cronjob", "CronJob"},
		{"replicaset", "ReplicaSet"},
	}
)

func first(labels map[string]string, names []string) string {
	for _, n := range names {
		if v := labels[n]; v != "" {
			return v
		}
	}
	return ""
}

func targets(w *envelope.Webhook, maxPods int) target {
	t := target{pods: map[string][]string{}, container: map[string]string{}, podWorkload: map[string]workloadRef{}}
	seenPod, seenWl, seenNode, seenObj := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	npods := 0
	alerts := make([]envelope.Alert, 0, len(w.Alerts))
	for _, a := range w.Alerts { // firing alerts first: they are what needs explaining
		if a.Firing() {
			alerts = append(alerts, a)
		}
	}
	for _, a := range w.Alerts {
		if !a.Firing() {
			alerts = append(alerts, a)
		}
	}
	// named adds the claim or autoscaler a label names, once, up to limit;
	// the rest are only named in more.
	named := func(labels map[string]string, label, ns string, limit int, refs *[]objRef, more *[]string) {
		name := labels[label]
		if name == "" || seenObj[label+"/"+ns+"/"+name] {
			return
		}
		seenObj[label+"/"+ns+"/"+name] = true
		if len(*refs) < limit {
			*refs = append(*refs, objRef{ns, name})
		} else {
			*more = append(*more, ns+"/"+name)
		}
	}
	for _, a := range alerts {
		ns := first(a.Labels, namespaceLabels)
		if n := first(a.Labels, nodeLabels); n != "" && !seenNode[n] {
			seenNode[n] = true
			t.nodes = append(t.nodes, n)
		}
		if ns == "" {
			continue
		}
		// Claims and autoscalers come on their own alerts (no pod label);
		// a custom rule may add a pod, which is then gathered too.
		named(a.Labels, pvcLabel, ns, maxTargetPVCs, &t.pvcs, &t.morePVCs)
		named(a.Labels, hpaLabel, ns, maxTargetHPAs, &t.hpas, &t.moreHPAs)
		if p := first(a.Labels, podLabels); p != "" {
			k := ns + "/" + p
			if !seenPod[k] && npods < maxPods {
				seenPod[k] = true
				if len(t.pods[ns]) == 0 {
					t.nsOrder = append(t.nsOrder, ns)
				}
				t.pods[ns] = append(t.pods[ns], p)
				if c := a.Labels["container"]; c != "" {
					t.container[k] = c
				}
				if r, ok := workloadOf(a.Labels, ns); ok {
					t.podWorkload[k] = r
				}
				npods++
			}
			continue
		}
		if r, ok := workloadOf(a.Labels, ns); ok && !seenWl[r.key()] {
			seenWl[r.key()] = true
			t.workloads = append(t.workloads, r)
		}
	}
	return t
}

// workloadOf is the workload an alert's labels name, if any.
func workloadOf(labels map[string]string, ns string) (workloadRef, bool) {
	for _, wl := range workloadLabels {
		if v := labels[wl.label]; v != "" {
			// "job" is also Prometheus' scrape job; only trust it
			// together with a kube-state-metrics job metric.
			if wl.label == "job" && !strings.HasPrefix(labels["__name__"]+labels["alertname"], "KubeJob") {
				continue
			}
			return workloadRef{wl.kind, ns, v}, true
		}
	}
	return workloadRef{}, false
}

// Gather collects the evidence for the notification's alerts. It returns
// what it could get; lookups that failed are in Errors, and Transient says
// whether a retry could do better.
func (g *Gatherer) Gather(ctx context.Context, w *envelope.Webhook) *Result {
	res := &Result{Counts: redact.Counts{}}
	t := targets(w, g.cfg.MaxPods)
	st := &gather{
		g: g, res: res, seen: map[string]bool{}, nodeOK: map[string]bool{}, wl: map[string]*envelope.WorkloadEvidence{}, selectors: map[string]string{},
		container: t.container, gone: map[string]bool{},
		missing: map[string]bool{}, detailed: map[string]bool{}, pvcs: map[string]bool{}, nsPods: map[string]*nsPodList{}, classes: map[string]*bool{},
		cronJobs: map[string]string{},
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.NotificationTimeout)
	defer cancel()
	for _, ns := range t.nsOrder {
		st.podsIn(ctx, ns, t.pods[ns])
	}
	for _, ns := range t.nsOrder { // in alert order, each workload once
		for _, p := range t.pods[ns] {
			if r, ok := t.podWorkload[ns+"/"+p]; ok && st.gone[ns+"/"+p] {
				st.workloadByLabel(ctx, r)
			}
		}
	}
	for _, r := range t.workloads {
		st.workloadByLabel(ctx, r)
	}
	for _, r := range t.hpas {
		st.hpa(ctx, r)
	}
	st.claims(ctx, t.pvcs)
	res.Detail.MorePVCs, res.Detail.MoreHPAs = st.xs(t.morePVCs), st.xs(t.moreHPAs)
	for _, n := range t.nodes {
		st.addNode(n)
	}
	if !g.cfg.SkipNodes {
		for _, n := range st.nodes {
			st.node(ctx, n)
		}
	}
	for _, wl := range st.wls {
		res.Detail.Workloads = append(res.Detail.Workloads, *wl)
	}
	if len(t.nsOrder) == 0 && len(t.workloads) == 0 && len(t.pvcs) == 0 && len(t.hpas) == 0 && (len(t.nodes) == 0 || g.cfg.SkipNodes) {
		res.Errors = append(res.Errors, "no Kubernetes object to look at: the alerts have no namespace with pod/deployment/statefulset/daemonset/job_name/persistentvolumeclaim/horizontalpodautoscaler labels, and no node label")
	}
	return res
}

// x redacts one string from the cluster.
func (st *gather) x(s string) string {
	if s == "" {
		return s
	}
	out, c := st.g.red.Redact(s)
	st.res.Counts.Add(c)
	return out
}

func (st *gather) errorf(format string, args ...any) {
	msg := st.x(fmt.Sprintf(format, args...))
	if !st.seen[msg] {
		st.seen[msg] = true
		st.res.Errors = append(st.res.Errors, msg)
	}
}

// errNotFound and errForbidden are returned by call after it recorded
// them; callers just move on.
var (
	errNotFound  = errors.New("not found")
	errForbidden = errors.New("forbidden")
)

type result[T any] struct {
	v   T
	err error
}

// call runs one API request under the per-call timeout and classifies its
// error: 404 and 403 are recorded (403 once, with the missing rule),
// timeouts and server errors are transient. The request runs in its own
// goroutine so that a transport that ignores ctx cannot hold the alert.
func call[T any](ctx context.Context, st *gather, n need, namespace, what string, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if st.g.used != nil {
		st.g.used(n)
	}
	if err := ctx.Err(); err != nil {
		st.transient(fmt.Errorf("%s: notification budget %s used up: %w", what, st.g.cfg.NotificationTimeout, err))
		return zero, err
	}
	st.res.Detail.APICalls++
	cctx, cancel := context.WithTimeout(ctx, st.g.cfg.CallTimeout)
	defer cancel()
	ch := make(chan result[T], 1)
	go func() {
		v, err := fn(cctx)
		ch <- result[T]{v, err}
	}()
	var r result[T]
	select {
	case r = <-ch:
	case <-cctx.Done():
		r.err = cctx.Err()
	}
	if r.err == nil {
		return r.v, nil
	}
	switch {
	case apierrors.IsNotFound(r.err):
		return zero, errNotFound
	case apierrors.IsForbidden(r.err):
		st.errorf("%s", forbiddenHint(n, namespace))
		return zero, errForbidden
	case isTransient(r.err):
		st.transient(fmt.Errorf("%s: %w", what, r.err))
		return zero, r.err
	default:
		st.errorf("%s: %v", what, r.err)
		return zero, r.err
	}
}

func (st *gather) transient(err error) {
	st.errorf("%v (transient)", err)
	if st.res.Transient == nil {
		st.res.Transient = err
	}
}

// isTransient reports errors that may go away: timeouts, throttling, 5xx,
// connection problems.
func isTransient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	if apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) {
		return true
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Code >= 500 {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused")
}

func (st *gather) addNode(name string) {
	if name != "" && !st.nodeOK[name] && len(st.nodes) < 5 {
		st.nodeOK[name] = true
		st.nodes = append(st.nodes, name)
	}
}

// Paging of the pod LIST for big alert groups: pages of podPage pods, at
// most maxPodPages of them (10,000 pods) per namespace and notification.
const (
	podPage     = 500
	maxPodPages = 20
)

// listPaged runs a LIST in pages of podPage, at most maxPodPages, and
// hands each page to page, which reports when it has found all it wants.
// complete is true when the listing reached its last page or page was
// satisfied; err is set only when the first page failed, since what
// earlier pages found is still evidence.
func listPaged[L metav1.ListInterface](ctx context.Context, st *gather, n need, ns, what string,
	list func(context.Context, metav1.ListOptions) (L, error), page func(L) bool,
) (complete bool, err error) {
	cont := ""
	for i := range maxPodPages {
		l, err := call(ctx, st, n, ns, what, func(ctx context.Context) (L, error) {
			return list(ctx, metav1.ListOptions{Limit: podPage, Continue: cont})
		})
		if err != nil {
			if i == 0 {
				return false, err
			}
			return false, nil
		}
		if page(l) {
			return true, nil
		}
		if cont = l.GetContinue(); cont == "" {
			return true, nil
		}
	}
	return false, nil
}

// podsIn fetches the named pods of one namespace: one GET each for a few,
// one LIST for many (a 50-pod alert group costs one call, not 50).
func (st *gather) podsIn(ctx context.Context, ns string, names []string) {
	var pods []*corev1.Pod
	if len(names) <= st.g.cfg.PodsInDetail {
		for _, name := range names {
			p, err := call(ctx, st, needGetPod, ns, "get pod "+ns+"/"+name, func(ctx context.Context) (*corev1.Pod, error) {
				return st.g.kc.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			})
			switch {
			case errors.Is(err, errNotFound):
				st.podGone(ns, name)
			case err == nil:
				pods = append(pods, p)
			}
		}
	} else {
		// Paged, and stopped as soon as every named pod is found: a huge
		// namespace costs the API server pages of podPage, not one giant
		// LIST, and a small one still costs one call.
		want := make(map[string]bool, len(names))
		for _, n := range names {
			want[n] = true
		}
		byName := make(map[string]*corev1.Pod, len(names))
		_, err := listPaged(ctx, st, needListPods, ns, "list pods in "+ns, st.g.kc.CoreV1().Pods(ns).List, func(list *corev1.PodList) bool {
			for i := range list.Items {
				if want[list.Items[i].Name] {
					byName[list.Items[i].Name] = &list.Items[i]
				}
			}
			return len(byName) == len(want)
		})
		if err != nil {
			return
		}
		for _, name := range names {
			if p, ok := byName[name]; ok {
				pods = append(pods, p)
			} else {
				st.podGone(ns, name)
			}
		}
	}
	st.podGroups(ctx, pods)
}

func (st *gather) podGone(ns, name string) {
	st.gone[ns+"/"+name] = true
	st.res.Detail.Pods = append(st.res.Detail.Pods, envelope.PodEvidence{Namespace: ns, Name: st.x(name), Gone: true})
	st.errorf("pod %s/%s not found: it was deleted before we looked (a restarted or rescheduled pod gets a new name)", ns, name)
}

// podGroups groups pods by their controller, gathers a few of each group in
// detail (the least healthy first) and summarises the rest.
func (st *gather) podGroups(ctx context.Context, pods []*corev1.Pod) {
	type group struct {
		owner *metav1.OwnerReference
		pods  []*corev1.Pod
	}
	var order []string
	groups := map[string]*group{}
	for _, p := range pods {
		key := "pod/" + p.Namespace + "/" + p.Name
		owner := metav1.GetControllerOf(p)
		if owner != nil {
			key = owner.Kind + "/" + p.Namespace + "/" + owner.Name
		}
		gr := groups[key]
		if gr == nil {
			gr = &group{owner: owner}
			groups[key] = gr
			order = append(order, key)
		}
		gr.pods = append(gr.pods, p)
	}
	for _, key := range order {
		gr := groups[key]
		sort.SliceStable(gr.pods, func(i, j int) bool { return badness(gr.pods[i]) > badness(gr.pods[j]) })
		var wl *envelope.WorkloadEvidence
		if gr.owner != nil {
			wl = st.owner(ctx, gr.pods[0].Namespace, *gr.owner)
		}
		n := min(len(gr.pods), st.g.cfg.PodsInDetail)
		for _, p := range gr.pods[:n] {
			st.pod(ctx, p, wl)
		}
		if wl != nil {
			wl.Pods += len(gr.pods)
			wl.PodsShown += n
			for _, p := range gr.pods[n:] {
				wl.MorePods = append(wl.MorePods, st.x(p.Name+" ("+podStatus(p)+")"))
			}
		}
	}
}

// badness orders pods so the ones that explain an alert come first.
func badness(p *corev1.Pod) int {
	b := 0
	if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodSucceeded {
		b += 1000
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready {
			b += 100
		}
		if c.State.Waiting != nil {
			b += 50
		}
		b += int(c.RestartCount)
	}
	return b
}

// podStatus is the STATUS column of `kubectl get pods`, roughly.
func podStatus(p *corev1.Pod) string {
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Waiting != nil && c.State.Waiting.Reason != "" {
			return c.State.Waiting.Reason
		}
		if c.State.Terminated != nil && c.State.Terminated.Reason != "" {
			return c.State.Terminated.Reason
		}
	}
	if p.Status.Reason != "" {
		return p.Status.Reason
	}
	return string(p.Status.Phase)
}

func tp(t metav1.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (st *gather) pod(ctx context.Context, p *corev1.Pod, wl *envelope.WorkloadEvidence) {
	st.detailed[p.Namespace+"/"+p.Name] = true
	pe := envelope.PodEvidence{
		Namespace: p.Namespace, Name: p.Name, Phase: string(p.Status.Phase),
		Reason: st.x(p.Status.Reason), Message: st.x(p.Status.Message),
		Node: p.Spec.NodeName, QoS: string(p.Status.QOSClass), StartedAt: tp(ptrTime(p.Status.StartTime)),
	}
	if wl != nil {
		pe.Owner = wl.Kind + "/" + wl.Name
	} else if o := metav1.GetControllerOf(p); o != nil {
		pe.Owner = o.Kind + "/" + o.Name
	}
	for _, c := range p.Status.Conditions {
		pe.Conditions = append(pe.Conditions, envelope.ConditionEvidence{
			Type: string(c.Type), Status: string(c.Status), Reason: st.x(c.Reason), Message: st.x(c.Message),
		})
	}
	statuses := map[string]corev1.ContainerStatus{}
	for _, cs := range p.Status.ContainerStatuses {
		statuses[cs.Name] = cs
	}
	for _, cs := range p.Status.InitContainerStatuses {
		statuses["init:"+cs.Name] = cs
	}
	var logTargets []envelope.ContainerEvidence
	addContainer := func(c corev1.Container, init bool) {
		key := c.Name
		if init {
			key = "init:" + c.Name
		}
		cs, hasStatus := statuses[key]
		ce := envelope.ContainerEvidence{Name: c.Name, Init: init, Image: st.x(c.Image), Requests: quantities(c.Resources.Requests), Limits: quantities(c.Resources.Limits)}
		if hasStatus {
			ce.Ready, ce.RestartCount = cs.Ready, cs.RestartCount
			ce.State, ce.LastState = st.state(cs.State), st.state(cs.LastTerminationState)
			if cs.Image != "" && cs.Image != c.Image {
				ce.Image = st.x(cs.Image)
			}
		}
		if st.g.cfg.Env {
			ce.Env = st.env(c.Env, c.EnvFrom)
		}
		if init && hasStatus && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0 && cs.RestartCount == 0 {
			return // a finished init container says nothing
		}
		pe.Containers = append(pe.Containers, ce)
		if hasStatus && (!ce.Ready || ce.RestartCount > 0) {
			logTargets = append(logTargets, ce)
		}
	}
	for _, c := range p.Spec.InitContainers {
		addContainer(c, true)
	}
	for _, c := range p.Spec.Containers {
		addContainer(c, false)
	}
	pe.Events = st.events(ctx, p.Namespace, "Pod", p.Name, string(p.UID))
	if p.Status.Phase == corev1.PodPending {
		st.podClaims(ctx, p)
	}
	if p.Spec.NodeName != "" {
		st.addNode(p.Spec.NodeName)
	}
	if want := st.container[p.Namespace+"/"+p.Name]; want != "" {
		// The alert names a container: its log comes first, even when
		// the container looks healthy (high latency, throttling).
		for i, c := range pe.Containers {
			if c.Name == want && !c.Init {
				kept := []envelope.ContainerEvidence{pe.Containers[i]}
				for _, lt := range logTargets {
					if lt.Name != want {
						kept = append(kept, lt)
					}
				}
				logTargets = kept
			}
		}
	}
	if len(logTargets) == 0 && p.Status.Phase == corev1.PodRunning && len(pe.Containers) > 0 {
		logTargets = append(logTargets, pe.Containers[len(pe.Containers)-1])
	}
	for _, c := range logTargets {
		if c.State != nil && c.State.State != "waiting" {
			pe.Logs = append(pe.Logs, st.log(ctx, p, c.Name, false))
		}
		if c.RestartCount > 0 {
			pe.Logs = append(pe.Logs, st.log(ctx, p, c.Name, true))
		}
	}
	st.res.Detail.Pods = append(st.res.Detail.Pods, pe)
}

func ptrTime(t *metav1.Time) metav1.Time {
	if t == nil {
		return metav1.Time{}
	}
	return *t
}

func quantities(rl corev1.ResourceList) map[string]string {
	if len(rl) == 0 {
		return nil
	}
	out := make(map[string]string, len(rl))
	for k, v := range rl {
		out[string(k)] = v.String()
	}
	return out
}

func (st *gather) state(s corev1.ContainerState) *envelope.ContainerState {
	switch {
	case s.Running != nil:
		return &envelope.ContainerState{State: "running", StartedAt: tp(s.Running.StartedAt)}
	case s.Waiting != nil:
		return &envelope.ContainerState{State: "waiting", Reason: st.x(s.Waiting.Reason), Message: st.x(s.Waiting.Message)}
	case s.Terminated != nil:
		t := s.Terminated
		code := t.ExitCode
		return &envelope.ContainerState{
			State: "terminated", Reason: st.x(t.Reason), Message: st.x(t.Message), ExitCode: &code, Signal: t.Signal,
			StartedAt: tp(t.StartedAt), FinishedAt: tp(t.FinishedAt),
		}
	}
	return nil
}

// env renders a container's environment like `kubectl describe`: literal
// values redacted (secret-looking names replaced whole), references named
// but never resolved, so the enricher needs no access to Secrets.
func (st *gather) env(vars []corev1.EnvVar, from []corev1.EnvFromSource) []string {
	var out []string
	for _, v := range vars {
		switch {
		case v.ValueFrom != nil && v.ValueFrom.SecretKeyRef != nil:
			out = append(out, fmt.Sprintf("%s=<from secret %s key %s>", v.Name, v.ValueFrom.SecretKeyRef.Name, v.ValueFrom.SecretKeyRef.Key))
		case v.ValueFrom != nil && v.ValueFrom.ConfigMapKeyRef != nil:
			out = append(out, fmt.Sprintf("%s=<from configmap %s key %s>", v.Name, v.ValueFrom.ConfigMapKeyRef.Name, v.ValueFrom.ConfigMapKeyRef.Key))
		case v.ValueFrom != nil && v.ValueFrom.FieldRef != nil:
			out = append(out, fmt.Sprintf("%s=<from field %s>", v.Name, v.ValueFrom.FieldRef.FieldPath))
		case v.ValueFrom != nil:
			out = append(out, v.Name+"=<from a reference>")
		case redact.LooksSecretName(v.Name) && v.Value != "":
			st.res.Counts[redact.KindSecretEnv]++
			out = append(out, v.Name+"="+redact.Placeholder(redact.KindSecretEnv))
		default:
			out = append(out, st.x(v.Name+"="+v.Value))
		}
	}
	for _, f := range from {
		switch {
		case f.SecretRef != nil:
			out = append(out, fmt.Sprintf("%s*=<all keys of secret %s>", f.Prefix, f.SecretRef.Name))
		case f.ConfigMapRef != nil:
			out = append(out, fmt.Sprintf("%s*=<all keys of configmap %s>", f.Prefix, f.ConfigMapRef.Name))
		}
	}
	return out
}

func (st *gather) log(ctx context.Context, p *corev1.Pod, container string, previous bool) envelope.LogEvidence {
	le := envelope.LogEvidence{Container: container, Previous: previous}
	what := fmt.Sprintf("logs of %s/%s container %s", p.Namespace, p.Name, container)
	if previous {
		what += " (previous)"
	}
	type tail struct {
		text string
		cut  bool
	}
	t, err := call(ctx, st, needPodLog, p.Namespace, "read "+what, func(ctx context.Context) (tail, error) {
		s, cut, err := st.g.logs.Tail(ctx, p.Namespace, p.Name, container, previous, st.g.cfg.LogLines, int64(st.g.cfg.LogBytes))
		return tail{s, cut}, err
	})
	switch {
	case errors.Is(err, errNotFound):
		le.Error = "no log (container not started, or no previous instance)"
	case errors.Is(err, errForbidden):
		le.Error = "forbidden"
	case err != nil:
		le.Error = st.x(err.Error())
	default:
		le.Text, le.Truncated = st.x(strings.TrimRight(t.text, "\n")), t.cut
		le.Text, le.Truncated = lastLines(le.Text, st.g.cfg.LogLines, le.Truncated)
	}
	return le
}

// lastLines keeps the last n lines (a log source may ignore TailLines).
func lastLines(s string, n int, cut bool) (string, bool) {
	if n <= 0 || s == "" {
		return s, cut
	}
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s, cut
	}
	return strings.Join(lines[len(lines)-n:], "\n"), true
}

// events lists the events of one object with field selectors (as kubectl
// describe does), newest first, deduplicated by reason and message, at
// most cfg.Events. The same filter is applied to the result, because not
// every server or fake honours every field selector.
func (st *gather) events(ctx context.Context, ns, kind, name, uid string) []envelope.EventEvidence {
	sel := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name}
	if ns != "" {
		sel["involvedObject.namespace"] = ns
	}
	list, err := call(ctx, st, needListEvents, ns, "list events of "+kind+" "+name, func(ctx context.Context) (*corev1.EventList, error) {
		return st.g.kc.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	})
	if err != nil {
		return nil
	}
	type agg struct {
		ev   envelope.EventEvidence
		last time.Time
	}
	byKey := map[string]*agg{}
	for i := range list.Items {
		e := &list.Items[i]
		if e.InvolvedObject.Kind != kind || e.InvolvedObject.Name != name {
			continue
		}
		if uid != "" && e.InvolvedObject.UID != "" && string(e.InvolvedObject.UID) != uid {
			continue // an earlier object with the same name
		}
		last := eventTime(e)
		count := e.Count
		if e.Series != nil && e.Series.Count > count {
			count = e.Series.Count
		}
		if count == 0 {
			count = 1
		}
		k := e.Type + "\x00" + e.Reason + "\x00" + e.Message
		if a, ok := byKey[k]; ok {
			a.ev.Count += count
			if last.After(a.last) {
				a.last = last
			}
			continue
		}
		byKey[k] = &agg{ev: envelope.EventEvidence{Object: kind + "/" + name, Type: e.Type, Reason: e.Reason, Message: e.Message, Count: count}, last: last}
	}
	all := make([]*agg, 0, len(byKey))
	for _, a := range byKey {
		all = append(all, a)
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].last.Equal(all[j].last) {
			return all[i].last.After(all[j].last)
		}
		return all[i].ev.Reason < all[j].ev.Reason
	})
	if len(all) > st.g.cfg.Events {
		all = all[:st.g.cfg.Events]
	}
	out := make([]envelope.EventEvidence, len(all))
	for i, a := range all {
		a.ev.LastSeen = a.last.UTC()
		a.ev.Reason, a.ev.Message = st.x(a.ev.Reason), st.x(a.ev.Message)
		out[i] = a.ev
	}
	return out
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// owner resolves a pod's controller to the workload an engineer thinks in
// (ReplicaSet → Deployment, Job → CronJob), once per workload.
func (st *gather) owner(ctx context.Context, ns string, o metav1.OwnerReference) *envelope.WorkloadEvidence {
	key := o.Kind + "/" + ns + "/" + o.Name
	if wl, ok := st.wl[key]; ok {
		return wl
	}
	var wl *envelope.WorkloadEvidence
	switch o.Kind {
	case "ReplicaSet":
		wl = st.replicaSet(ctx, ns, o.Name)
	case "Deployment":
		wl = st.deployment(ctx, ns, o.Name)
	case "StatefulSet":
		wl = st.statefulSet(ctx, ns, o.Name)
	case "DaemonSet":
		wl = st.daemonSet(ctx, ns, o.Name)
	case "Job":
		wl = st.job(ctx, ns, o.Name)
	default:
		wl = &envelope.WorkloadEvidence{Kind: o.Kind, Namespace: ns, Name: o.Name}
	}
	if wl == nil {
		wl = &envelope.WorkloadEvidence{Kind: o.Kind, Namespace: ns, Name: o.Name}
	}
	if existing, ok := st.wl[wl.Kind+"/"+ns+"/"+wl.Name]; ok { // two ReplicaSets of one Deployment
		st.wl[key] = existing
		return existing
	}
	st.wl[key] = wl
	st.wl[wl.Kind+"/"+ns+"/"+wl.Name] = wl
	st.wls = append(st.wls, wl)
	return wl
}

func conditions[T any](cs []T, f func(T) envelope.ConditionEvidence) []envelope.ConditionEvidence {
	out := make([]envelope.ConditionEvidence, 0, len(cs))
	for _, c := range cs {
		out = append(out, f(c))
	}
	return out
}

func images(spec corev1.PodSpec) []string {
	out := make([]string, 0, len(spec.Containers))
	for _, c := range spec.Containers {
		out = append(out, c.Name+"="+c.Image)
	}
	return out
}

func (st *gather) replicaSet(ctx context.Context, ns, name string) *envelope.WorkloadEvidence {
	rs, err := call(ctx, st, needGetReplicaSet, ns, "get replicaset "+ns+"/"+name, func(ctx context.Context) (*appsv1.ReplicaSet, error) {
		return st.g.kc.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if err != nil {
		if errors.Is(err, errNotFound) {
			st.missing["ReplicaSet/"+ns+"/"+name] = true
		}
		return nil
	}
	o := metav1.GetControllerOf(rs)
	if o != nil && o.Kind == "Deployment" {
		if wl, ok := st.wl["Deployment/"+ns+"/"+o.Name]; ok {
			// Pods of the old and the new ReplicaSet of a rollout: the
			// Deployment, its rollout history and events are read once.
			return wl
		}
	}
	var rsEvents []envelope.EventEvidence
	for _, c := range rs.Status.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
			// FailedCreate (quota, admission webhooks, PodSecurity) is
			// recorded on the ReplicaSet, not on any pod.
			rsEvents = st.events(ctx, ns, "ReplicaSet", name, string(rs.UID))
		}
	}
	if o != nil && o.Kind == "Deployment" {
		if wl := st.deployment(ctx, ns, o.Name); wl != nil {
			wl.Events = append(rsEvents, wl.Events...)
			return wl
		}
	}
	st.selector("ReplicaSet", ns, name, rs.Spec.Selector)
	return &envelope.WorkloadEvidence{
		Kind: "ReplicaSet", Namespace: ns, Name: name, Images: st.xs(images(rs.Spec.Template.Spec)),
		Replicas: fmt.Sprintf("%d/%d ready", rs.Status.ReadyReplicas, ptrInt(rs.Spec.Replicas)), Events: rsEvents,
	}
}

func (st *gather) selector(kind, ns, name string, ls *metav1.LabelSelector) {
	if ls == nil {
		return
	}
	if sel, err := metav1.LabelSelectorAsSelector(ls); err == nil && !sel.Empty() {
		st.selectors[kind+"/"+ns+"/"+name] = sel.String()
	}
}

// ptrInt reads an optional count whose API default is 1 (replicas,
// minReplicas).
func ptrInt(p *int32) int32 { return ptrOr(p, 1) }

// jobBackoffLimitDefault is what batch/v1 uses when a Job sets no
// backoffLimit.
const jobBackoffLimitDefault = 6

// ptrOr reads an optional count, def when unset.
func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func (st *gather) xs(ss []string) []string {
	for i := range ss {
		ss[i] = st.x(ss[i])
	}
	return ss
}

func (st *gather) deployment(ctx context.Context, ns, name string) *envelope.WorkloadEvidence {
	d, err := call(ctx, st, needGetDeployment, ns, "get deployment "+ns+"/"+name, func(ctx context.Context) (*appsv1.Deployment, error) {
		return st.g.kc.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if err != nil {
		if errors.Is(err, errNotFound) {
			st.missing["Deployment/"+ns+"/"+name] = true
			st.errorf("deployment %s/%s not found", ns, name)
		}
		return nil
	}
	wl := &envelope.WorkloadEvidence{
		Kind: "Deployment", Namespace: ns, Name: name,
		Revision: d.Annotations["deployment.kubernetes.io/revision"],
		Replicas: fmt.Sprintf("%d/%d ready, %d updated, %d unavailable", d.Status.ReadyReplicas, ptrInt(d.Spec.Replicas), d.Status.UpdatedReplicas, d.Status.UnavailableReplicas),
		Images:   st.xs(images(d.Spec.Template.Spec)),
		Conditions: conditions(d.Status.Conditions, func(c appsv1.DeploymentCondition) envelope.ConditionEvidence {
			return envelope.ConditionEvidence{Type: string(c.Type), Status: string(c.Status), Reason: st.x(c.Reason), Message: st.x(c.Message)}
		}),
	}
	st.selector("Deployment", ns, name, d.Spec.Selector)
	st.rollout(ctx, d, wl)
	wl.Events = st.events(ctx, ns, "Deployment", name, string(d.UID))
	return wl
}

// rollout finds the Deployment's ReplicaSets (one LIST with its selector),
// the time of the last rollout, and the image changes between the last two
// revisions.
func (st *gather) rollout(ctx context.Context, d *appsv1.Deployment, wl *envelope.WorkloadEvidence) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || d.Spec.Selector == nil {
		return
	}
	list, err := call(ctx, st, needListReplicaSet, d.Namespace, "list replicasets of deployment "+d.Namespace+"/"+d.Name, func(ctx context.Context) (*appsv1.ReplicaSetList, error) {
		return st.g.kc.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	})
	if err != nil {
		return
	}
	type rev struct {
		n  int64
		rs *appsv1.ReplicaSet
	}
	var revs []rev
	for i := range list.Items {
		rs := &list.Items[i]
		if o := metav1.GetControllerOf(rs); o == nil || o.UID != d.UID {
			continue
		}
		n, err := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
		if err != nil {
			continue
		}
		revs = append(revs, rev{n, rs})
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i].n > revs[j].n })
	if len(revs) == 0 {
		return
	}
	wl.LastRollout = tp(revs[0].rs.CreationTimestamp)
	if wl.Revision == "" {
		wl.Revision = strconv.FormatInt(revs[0].n, 10)
	}
	if len(revs) < 2 {
		return
	}
	prev := map[string]string{}
	for _, c := range revs[1].rs.Spec.Template.Spec.Containers {
		prev[c.Name] = c.Image
	}
	for _, c := range revs[0].rs.Spec.Template.Spec.Containers {
		switch old, ok := prev[c.Name]; {
		case !ok:
			wl.ImageChanges = append(wl.ImageChanges, st.x(fmt.Sprintf("%s: added %s (revision %d)", c.Name, c.Image, revs[0].n)))
		case old != c.Image:
			wl.ImageChanges = append(wl.ImageChanges, st.x(fmt.Sprintf("%s: %s -> %s (revision %d -> %d)", c.Name, old, c.Image, revs[1].n, revs[0].n)))
		}
	}
}

func (st *gather) statefulSet(ctx context.Context, ns, name string) *envelope.WorkloadEvidence {
	s, err := call(ctx, st, needGetStatefulSet, ns, "get statefulset "+ns+"/"+name, func(ctx context.Context) (*appsv1.StatefulSet, error) {
		return st.g.kc.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if err != nil {
		if errors.Is(err, errNotFound) {
			st.missing["StatefulSet/"+ns+"/"+name] = true
			st.errorf("statefulset %s/%s not found", ns, name)
		}
		return nil
	}
	wl := &envelope.WorkloadEvidence{
		Kind: "StatefulSet", Namespace: ns, Name: name, Revision: s.Status.UpdateRevision,
		Replicas: fmt.Sprintf("%d/%d ready, %d updated", s.Status.ReadyReplicas, ptrInt(s.Spec.Replicas), s.Status.UpdatedReplicas),
		Images:   st.xs(images(s.Spec.Template.Spec)),
	}
	st.selector("StatefulSet", ns, name, s.Spec.Selector)
	if s.Status.CurrentRevision != "" && s.Status.CurrentRevision != s.Status.UpdateRevision {
		wl.ImageChanges = append(wl.ImageChanges, fmt.Sprintf("rollout in progress: %s -> %s", s.Status.CurrentRevision, s.Status.UpdateRevision))
	}
	wl.Events = st.events(ctx, ns, "StatefulSet", name, string(s.UID))
	return wl
}

func (st *gather) daemonSet(ctx context.Context, ns, name string) *envelope.WorkloadEvidence {
	d, err := call(ctx, st, needGetDaemonSet, ns, "get daemonset "+ns+"/"+name, func(ctx context.Context) (*appsv1.DaemonSet, error) {
		return st.g.kc.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if err != nil {
		if errors.Is(err, errNotFound) {
			st.errorf("daemonset %s/%s not found", ns, name)
		}
		return nil
	}
	wl := &envelope.WorkloadEvidence{
		Kind: "DaemonSet", Namespace: ns, Name: name,
		Replicas: fmt.Sprintf("%d/%d ready, %d updated, %d misscheduled", d.Status.NumberReady, d.Status.DesiredNumberScheduled, d.Status.UpdatedNumberScheduled, d.Status.NumberMisscheduled),
		Images:   st.xs(images(d.Spec.Template.Spec)),
	}
	st.selector("DaemonSet", ns, name, d.Spec.Selector)
	wl.Events = st.events(ctx, ns, "DaemonSet", name, string(d.UID))
	return wl
}

func (st *gather) job(ctx context.Context, ns, name string) *envelope.WorkloadEvidence {
	j, err := call(ctx, st, needGetJob, ns, "get job "+ns+"/"+name, func(ctx context.Context) (*batchv1.Job, error) {
		return st.g.kc.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if err != nil {
		if errors.Is(err, errNotFound) {
			st.errorf("job %s/%s not found (a finished Job may have been cleaned up by its TTL)", ns, name)
		}
		return nil
	}
	wl := &envelope.WorkloadEvidence{
		Kind: "Job", Namespace: ns, Name: name,
		Replicas: fmt.Sprintf("%d active, %d succeeded, %d failed (backoff limit %d)", j.Status.Active, j.Status.Succeeded, j.Status.Failed, ptrOr(j.Spec.BackoffLimit, jobBackoffLimitDefault)),
		Images:   st.xs(images(j.Spec.Template.Spec)),
		Conditions: conditions(j.Status.Conditions, func(c batchv1.JobCondition) envelope.ConditionEvidence {
			return envelope.ConditionEvidence{Type: string(c.Type), Status: string(c.Status), Reason: st.x(c.Reason), Message: st.x(c.Message)}
		}),
	}
	if o := metav1.GetControllerOf(j); o != nil && o.Kind == "CronJob" {
		wl.Parent = st.cronJobParent(ctx, ns, o.Name)
	}
	st.selector("Job", ns, name, j.Spec.Selector)
	wl.Events = st.events(ctx, ns, "Job", name, string(j.UID))
	return wl
}

// cronJobParent describes a Job's CronJob, read once per CronJob and
// notification: the failed runs of one schedule share it.
func (st *gather) cronJobParent(ctx context.Context, ns, name string) string {
	key := ns + "/" + name
	if p, ok := st.cronJobs[key]; ok {
		return p
	}
	p := "CronJob/" + name
	cj, err := call(ctx, st, needGetCronJob, ns, "get cronjob "+key, func(ctx context.Context) (*batchv1.CronJob, error) {
		return st.g.kc.BatchV1().CronJobs(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if err == nil {
		p = fmt.Sprintf("CronJob/%s (schedule %q, suspended %t)", name, cj.Spec.Schedule, cj.Spec.Suspend != nil && *cj.Spec.Suspend)
		if cj.Status.LastSuccessfulTime != nil {
			p += ", last success " + cj.Status.LastSuccessfulTime.UTC().Format(time.RFC3339)
		}
	}
	st.cronJobs[key] = p
	return p
}

// workloadByLabel handles an alert that names a workload but no pod
// (KubeDeploymentReplicasMismatch, KubeJobFailed): the workload, then its
// pods by its selector (one LIST), a few in detail.
func (st *gather) workloadByLabel(ctx context.Context, r workloadRef) {
	if r.kind == "CronJob" {
		cj, err := call(ctx, st, needGetCronJob, r.namespace, "get cronjob "+r.namespace+"/"+r.name, func(ctx context.Context) (*batchv1.CronJob, error) {
			return st.g.kc.BatchV1().CronJobs(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
		})
		if err == nil {
			wl := envelope.WorkloadEvidence{Kind: "CronJob", Namespace: r.namespace, Name: r.name, Images: st.xs(images(cj.Spec.JobTemplate.Spec.Template.Spec))}
			wl.Replicas = fmt.Sprintf("%d active jobs", len(cj.Status.Active))
			st.res.Detail.Workloads = append(st.res.Detail.Workloads, wl)
		} else if errors.Is(err, errNotFound) {
			st.errorf("cronjob %s/%s not found", r.namespace, r.name)
		}
		return
	}
	if _, ok := st.wl[r.key()]; ok {
		return // already gathered through one of the alert's pods
	}
	wl := st.owner(ctx, r.namespace, metav1.OwnerReference{Kind: r.kind, Name: r.name})
	st.workloadPods(ctx, r, wl)
}

// workloadPods lists a workload's pods by its label selector.
func (st *gather) workloadPods(ctx context.Context, r workloadRef, wl *envelope.WorkloadEvidence) {
	sel, ok := st.selectors[wl.Kind+"/"+wl.Namespace+"/"+wl.Name]
	if !ok {
		return // the workload was not found or not readable
	}
	list, err := call(ctx, st, needListPods, r.namespace, "list pods of "+r.kind+" "+r.namespace+"/"+r.name, func(ctx context.Context) (*corev1.PodList, error) {
		return st.g.kc.CoreV1().Pods(r.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	})
	if err != nil {
		return
	}
	pods := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		pods = append(pods, &list.Items[i])
	}
	sort.SliceStable(pods, func(i, j int) bool { return badness(pods[i]) > badness(pods[j]) })
	n := min(len(pods), st.g.cfg.PodsInDetail)
	for _, p := range pods[:n] {
		st.pod(ctx, p, wl)
	}
	wl.Pods += len(pods)
	wl.PodsShown += n
	for _, p := range pods[n:] {
		wl.MorePods = append(wl.MorePods, st.x(p.Name+" ("+podStatus(p)+")"))
	}
}

func (st *gather) node(ctx context.Context, name string) {
	n, err := call(ctx, st, needGetNode, "", "get node "+name, func(ctx context.Context) (*corev1.Node, error) {
		return st.g.kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	})
	if errors.Is(err, errNotFound) {
		st.res.Detail.Nodes = append(st.res.Detail.Nodes, envelope.NodeEvidence{Name: name, Gone: true})
		st.errorf("node %s not found (removed from the cluster?)", name)
		return
	}
	if err != nil {
		return
	}
	ne := envelope.NodeEvidence{Name: name, Unschedulable: n.Spec.Unschedulable}
	for _, c := range n.Status.Conditions {
		switch c.Type {
		case corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable:
			ne.Conditions = append(ne.Conditions, envelope.ConditionEvidence{Type: string(c.Type), Status: string(c.Status), Reason: st.x(c.Reason), Message: st.x(c.Message)})
		}
	}
	for _, c := range ne.Conditions {
		if c.Type == string(corev1.NodeReady) && c.Status != string(corev1.ConditionTrue) {
			// NodeNotReady and friends are recorded in the namespace of
			// whoever reported them; list across namespaces.
			ne.Events = st.events(ctx, "", "Node", name, "")
		}
	}
	st.res.Detail.Nodes = append(st.res.Detail.Nodes, ne)
}
