package enricher

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// t0 is "now" in every scenario; object times are relative to it.
var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

const ns = "prod"

// testLogs is a LogSource serving fixed logs, keyed ns/pod/container and
// ns/pod/container/previous. A missing key is a 404, as the API answers
// for a container without a previous instance.
type testLogs struct {
	mu    sync.Mutex
	logs  map[string]string
	calls int
}

func (l *testLogs) Tail(_ context.Context, namespace, pod, container string, previous bool, lines int, limitBytes int64) (string, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	k := namespace + "/" + pod + "/" + container
	if previous {
		k += "/previous"
	}
	s, ok := l.logs[k]
	if !ok {
		return "", false, apierrors.NewNotFound(schema.GroupResource{Resource: "pods/log"}, pod)
	}
	all := strings.Split(s, "\n")
	cut := false
	if len(all) > lines {
		all, cut = all[len(all)-lines:], true
	}
	s = strings.Join(all, "\n")
	if int64(len(s)) > limitBytes {
		s, cut = s[int64(len(s))-limitBytes:], true
	}
	return s, cut, nil
}

// scenario is one situation an on-call engineer meets, as cluster objects
// (with their status), container logs, the alert that fires, and what the
// enrichment must say.
type scenario struct {
	name   string
	objs   []client.Object
	logs   map[string]string
	labels map[string]string
	// check asserts on the enrichment; live is true against a real API
	// server, where creation times are the server's, not the fixture's.
	check func(t *testing.T, e *envelope.Enrichment, live bool)
}

func meta(name string, uid string, owner ...client.Object) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID(uid), CreationTimestamp: at(-time.Hour)}
	for _, o := range owner {
		kind := ""
		switch o.(type) {
		case *appsv1.Deployment:
			kind = "Deployment"
		case *appsv1.ReplicaSet:
			kind = "ReplicaSet"
		case *appsv1.StatefulSet:
			kind = "StatefulSet"
		case *appsv1.DaemonSet:
			kind = "DaemonSet"
		case *batchv1.Job:
			kind = "Job"
		case *batchv1.CronJob:
			kind = "CronJob"
		}
		apiVersion := "apps/v1"
		if kind == "Job" || kind == "CronJob" {
			apiVersion = "batch/v1"
		}
		yes := true
		m.OwnerReferences = append(m.OwnerReferences, metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: o.GetName(), UID: o.GetUID(), Controller: &yes})
	}
	return m
}

func podTemplate(labels map[string]string, c ...corev1.Container) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: c}}
}

func container(name, image, memLimit string) corev1.Container {
	c := corev1.Container{Name: name, Image: image, Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}}
	if memLimit != "" {
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memLimit)}
	}
	return c
}

func ptr[T any](v T) *T { return &v }

func selector(app string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
}

func deployment(name, revision, image string) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: meta(name, "uid-deploy-"+name), Spec: appsv1.DeploymentSpec{
		Replicas: ptr(int32(3)), Selector: selector(name), Template: podTemplate(map[string]string{"app": name}, container(name, image, "256Mi")),
	}, Status: appsv1.DeploymentStatus{Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 3, UnavailableReplicas: 1}}
	d.Annotations = map[string]string{"deployment.kubernetes.io/revision": revision}
	return d
}

func replicaSet(d *appsv1.Deployment, hash, revision, image string, created time.Duration) *appsv1.ReplicaSet {
	name := d.Name + "-" + hash
	labels := map[string]string{"app": d.Name, "pod-template-hash": hash}
	rs := &appsv1.ReplicaSet{ObjectMeta: meta(name, "uid-rs-"+name, d), Spec: appsv1.ReplicaSetSpec{
		Replicas: ptr(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: podTemplate(labels, container(d.Name, image, "256Mi")),
	}, Status: appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 2}}
	rs.Labels = labels
	rs.Annotations = map[string]string{"deployment.kubernetes.io/revision": revision}
	rs.CreationTimestamp = at(created)
	return rs
}

// pod builds a pod with one container and its status.
func pod(name string, owner client.Object, labels map[string]string, c corev1.Container, node string, phase corev1.PodPhase, cs *corev1.ContainerStatus) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: meta(name, "uid-pod-"+name), Spec: corev1.PodSpec{
		Containers: []corev1.Container{c}, NodeName: node, AutomountServiceAccountToken: ptr(false),
	}, Status: corev1.PodStatus{Phase: phase, QOSClass: corev1.PodQOSBurstable, StartTime: ptr(at(-30 * time.Minute))}}
	if owner != nil {
		p.OwnerReferences = meta("", "", owner).OwnerReferences
	}
	p.Labels = labels
	if cs != nil {
		cs.Name, cs.Image = c.Name, c.Image
		p.Status.ContainerStatuses = []corev1.ContainerStatus{*cs}
		ready := corev1.ConditionTrue
		if !cs.Ready {
			ready = corev1.ConditionFalse
		}
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: at(-30 * time.Minute)},
			{Type: corev1.PodReady, Status: ready, Reason: map[bool]string{true: "", false: "ContainersNotReady"}[cs.Ready], LastTransitionTime: at(-5 * time.Minute)},
		}
	}
	return p
}

func event(name string, obj client.Object, kind, typ, reason, msg string, count int32, last time.Duration) *corev1.Event {
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		InvolvedObject: corev1.ObjectReference{
			Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID(),
			APIVersion: eventAPIVersion[kind],
		},
		Type: typ, Reason: reason, Message: msg, Count: count,
		FirstTimestamp: at(last - 10*time.Minute), LastTimestamp: at(last),
		Source: corev1.EventSource{Component: "kubelet"},
	}
}

var eventAPIVersion = map[string]string{
	"Pod": "v1", "Node": "v1", "PersistentVolumeClaim": "v1", "HorizontalPodAutoscaler": "autoscaling/v2",
	"Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1",
}

// nodeEvent is an event about a node, recorded in "default" as the node
// controller does.
func nodeEvent(n *corev1.Node, reason, msg string, last time.Duration) *corev1.Event {
	e := event(n.Name+"-"+strings.ToLower(reason), n, "Node", "Normal", reason, msg, 1, last)
	e.Namespace = "default"
	e.InvolvedObject.Namespace = ""
	e.Source.Component = "node-controller"
	return e
}

func node(name string, ready corev1.ConditionStatus, reason, msg string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-node-" + name)}}
	n.Status.Conditions = []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: ready, Reason: reason, Message: msg, LastHeartbeatTime: at(-time.Minute), LastTransitionTime: at(-time.Minute)},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: at(-time.Minute), LastTransitionTime: at(-time.Hour)},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: at(-time.Minute), LastTransitionTime: at(-time.Hour)},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: at(-time.Minute), LastTransitionTime: at(-time.Hour)},
	}
	return n
}

func terminated(code int32, reason string, started, finished time.Duration) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, StartedAt: at(started), FinishedAt: at(finished), ContainerID: "containerd://abc"}}
}

func waiting(reason, msg string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
}

func alertLabels(kv ...string) map[string]string {
	m := map[string]string{"namespace": ns, "severity": "warning"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// scenarios are the situations of the issue: CrashLoopBackOff with a fatal
// log line and a recent rollout, OOMKilled, ImagePullBackOff, a failing
// liveness probe, Pending and unschedulable, node NotReady, a pod deleted
// before we look.
func scenarios() []scenario {
	api := deployment("api", "2", "acme/api:v1.8")
	apiNew := replicaSet(api, "7d9f8b6c5", "2", "acme/api:v1.8", -12*time.Minute)
	apiOld := replicaSet(api, "5c4b3a291", "1", "acme/api:v1.7", -72*time.Hour)
	crash := pod("api-7d9f8b6c5-x2x7k", apiNew, apiNew.Spec.Template.Labels, container("api", "acme/api:v1.8", "256Mi"), "node-1", corev1.PodRunning,
		&corev1.ContainerStatus{RestartCount: 4, State: waiting("CrashLoopBackOff", "back-off 1m20s restarting failed container=api pod=api-7d9f8b6c5-x2x7k_prod"), LastTerminationState: terminated(1, "Error", -45*time.Second, -42*time.Second)})

	cache := &appsv1.StatefulSet{ObjectMeta: meta("cache", "uid-sts-cache"), Spec: appsv1.StatefulSetSpec{
		Replicas: ptr(int32(1)), Selector: selector("cache"), ServiceName: "cache", Template: podTemplate(map[string]string{"app": "cache"}, container("redis", "redis:7.4", "512Mi")),
	}, Status: appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 1, CurrentRevision: "cache-6b8f", UpdateRevision: "cache-6b8f"}}
	oom := pod("cache-0", cache, map[string]string{"app": "cache"}, container("redis", "redis:7.4", "512Mi"), "node-1", corev1.PodRunning,
		&corev1.ContainerStatus{Ready: true, RestartCount: 3, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-2 * time.Minute)}}, LastTerminationState: terminated(137, "OOMKilled", -20*time.Minute, -2*time.Minute)})

	web := deployment("web", "5", "acme/web:v9")
	webRS := replicaSet(web, "6f7c9d8b4", "5", "acme/web:v9", -5*time.Minute)
	pull := pod("web-6f7c9d8b4-q8zrp", webRS, webRS.Spec.Template.Labels, container("web", "acme/web:v9", ""), "node-1", corev1.PodPending,
		&corev1.ContainerStatus{State: waiting("ImagePullBackOff", `Back-off pulling image "acme/web:v9"`)})

	worker := &appsv1.DaemonSet{ObjectMeta: meta("worker", "uid-ds-worker"), Spec: appsv1.DaemonSetSpec{
		Selector: selector("worker"), Template: podTemplate(map[string]string{"app": "worker"}, container("worker", "acme/worker:2.3", "128Mi")),
	}, Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 3}}
	live := pod("worker-8kx2p", worker, map[string]string{"app": "worker"}, container("worker", "acme/worker:2.3", "128Mi"), "node-1", corev1.PodRunning,
		&corev1.ContainerStatus{RestartCount: 2, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-time.Minute)}}, LastTerminationState: terminated(137, "Error", -10*time.Minute, -time.Minute)})

	report := &batchv1.CronJob{ObjectMeta: meta("report", "uid-cj-report"), Spec: batchv1.CronJobSpec{Schedule: "30 2 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{container("report", "acme/report:1.0", "8Gi")}}},
	}}}}
	job := &batchv1.Job{ObjectMeta: meta("report-29342150", "uid-job-report", report), Spec: batchv1.JobSpec{
		BackoffLimit: ptr(int32(2)), ManualSelector: ptr(true), Selector: selector("report"),
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "report"}}, Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{container("report", "acme/report:1.0", "8Gi")}}},
	}, Status: batchv1.JobStatus{Active: 1, StartTime: ptr(at(-10 * time.Minute))}}
	pending := pod("report-29342150-abcde", job, map[string]string{"app": "report"}, container("report", "acme/report:1.0", "8Gi"), "", corev1.PodPending, nil)
	pending.Spec.RestartPolicy = corev1.RestartPolicyNever
	pending.Status.Conditions = []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.", LastTransitionTime: at(-9 * time.Minute),
	}}

	node1 := node("node-1", corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")

	gp3 := storageClass("gp3", true)
	postgres := &appsv1.StatefulSet{ObjectMeta: meta("postgres", "uid-sts-postgres"), Spec: appsv1.StatefulSetSpec{
		Replicas: ptr(int32(1)), Selector: selector("postgres"), ServiceName: "postgres", Template: podTemplate(map[string]string{"app": "postgres"}, container("postgres", "postgres:17.2", "1Gi")),
	}, Status: appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 1, CurrentRevision: "postgres-7f9c", UpdateRevision: "postgres-7f9c"}}
	data := claim("data-postgres-0", "gp3", "10Gi", corev1.ClaimBound)
	data.Spec.VolumeName = "pvc-0b7c2f3e-data"
	data.Annotations = map[string]string{selectedNodeAnnotation: "node-1"}
	pg := pod("postgres-0", postgres, map[string]string{"app": "postgres"}, container("postgres", "postgres:17.2", "1Gi"), "node-1", corev1.PodRunning,
		&corev1.ContainerStatus{Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-3 * time.Hour)}}})
	mountClaim(pg, "data", "data-postgres-0")
	// A neighbour in the namespace that mounts something else.
	other := pod("metrics-exporter", nil, nil, container("exporter", "prom/postgres-exporter:0.16", "64Mi"), "node-1", corev1.PodRunning,
		&corev1.ContainerStatus{Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-3 * time.Hour)}}})
	mountClaim(other, "scratch", "exporter-scratch")

	fast := storageClass("fast", false)
	uploads := claim("uploads", "fast", "50Gi", corev1.ClaimPending)

	uploader := pod("uploader-0", nil, nil, container("uploader", "acme/uploader:3.1", "256Mi"), "", corev1.PodPending, nil)
	uploader.Status.Conditions = []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.", LastTransitionTime: at(-4 * time.Minute),
	}}
	mountClaim(uploader, "scratch", "scratch")
	mountClaim(uploader, "config", "uploader-config")
	scratch := claim("scratch", "fast-ssd", "20Gi", corev1.ClaimPending)
	bound := claim("uploader-config", "gp3", "1Gi", corev1.ClaimBound)

	checkout := deployment("checkout", "4", "acme/checkout:2.0")
	checkoutRS := replicaSet(checkout, "6c9d7f5b8", "4", "acme/checkout:2.0", -2*time.Hour)
	checkoutPod := pod("checkout-6c9d7f5b8-k2m4p", checkoutRS, checkoutRS.Spec.Template.Labels, container("checkout", "acme/checkout:2.0", "512Mi"), "node-1", corev1.PodRunning,
		&corev1.ContainerStatus{Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-time.Hour)}}})
	hpa := maxedHPA("checkout", "Deployment", "checkout")
	node2 := node("node-2", corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status.")

	return []scenario{
		{
			name: "CrashLoopBackOff", objs: []client.Object{
				node1, api, apiOld, apiNew, crash,
				event("api-backoff", crash, "Pod", "Warning", "BackOff", "Back-off restarting failed container api in pod api-7d9f8b6c5-x2x7k_prod(uid)", 12, -30*time.Second),
				event("api-pulled", crash, "Pod", "Normal", "Pulled", `Container image "acme/api:v1.8" already present on machine`, 5, -46*time.Second),
				event("api-scaled", api, "Deployment", "Normal", "ScalingReplicaSet", "Scaled up replica set api-7d9f8b6c5 from 0 to 3", 1, -12*time.Minute),
			},
			logs: map[string]string{
				ns + "/api-7d9f8b6c5-x2x7k/api/previous": "2026-11-26T09:59:15Z INFO starting api v1.8\n2026-11-26T09:59:15Z INFO loading config from /etc/api/config.yaml\nFATAL: config key DB_HOST missing",
			},
			labels: alertLabels("alertname", "KubePodCrashLooping", "pod", crash.Name, "container", "api"),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Contains(t, e.Headline, "container api restarted 4 times; last exit 1 (Error) 42s ago, now CrashLoopBackOff")
				assert.Contains(t, e.KeyEvidence, "api log (previous): FATAL: config key DB_HOST missing")
				assert.Contains(t, strings.Join(e.KeyEvidence, "\n"), "api: acme/api:v1.7 -> acme/api:v1.8")
				if live {
					assert.Contains(t, e.Text, "Revision 2, rolled out")
				} else {
					assert.Contains(t, e.Text, "Revision 2, rolled out 12m ago")
				}
				assert.Contains(t, e.Text, "Warning BackOff x12")
				w := e.Detail.Workloads[0]
				assert.Equal(t, "Deployment", w.Kind)
				assert.Equal(t, []string{"api: acme/api:v1.7 -> acme/api:v1.8 (revision 1 -> 2)"}, w.ImageChanges)
				c := e.Detail.Pods[0].Containers[0]
				assert.Equal(t, int32(4), c.RestartCount)
				assert.Equal(t, int32(1), *c.LastState.ExitCode)
				assert.Equal(t, "256Mi", c.Limits["memory"])
				assert.Equal(t, "Ready", e.Detail.Nodes[0].Conditions[0].Type)
			},
		},
		{
			name: "OOMKilled", objs: []client.Object{
				node1, cache, oom,
				event("cache-oom", oom, "Pod", "Warning", "BackOff", "Back-off restarting failed container redis", 3, -2*time.Minute),
			},
			logs: map[string]string{
				ns + "/cache-0/redis":          "1:M 26 Nov 2026 09:58:01.000 * Ready to accept connections tcp",
				ns + "/cache-0/redis/previous": "1:M 26 Nov 2026 09:57:58.000 * Background saving started by pid 42",
			},
			labels: alertLabels("alertname", "KubePodCrashLooping", "pod", "cache-0", "statefulset", "cache"),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Contains(t, e.Headline, "container redis was OOMKilled (exit 137) at its memory limit 512Mi; 3 restarts")
				assert.Contains(t, e.KeyEvidence, "redis: OOMKilled, exit 137, memory limit 512Mi")
				assert.Equal(t, "StatefulSet", e.Detail.Workloads[0].Kind)
				assert.Len(t, e.Detail.Workloads, 1, "the statefulset label must not gather the workload twice")
			},
		},
		{
			name: "ImagePullBackOff", objs: []client.Object{
				node1, web, webRS, pull,
				event("web-failed", pull, "Pod", "Warning", "Failed", `Failed to pull image "acme/web:v9": rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/acme/web:v9": not found`, 4, -time.Minute),
				event("web-backoff", pull, "Pod", "Normal", "BackOff", `Back-off pulling image "acme/web:v9"`, 9, -20*time.Second),
			},
			labels: alertLabels("alertname", "KubePodNotReady", "pod", pull.Name),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Equal(t, "container web cannot pull image acme/web:v9: ImagePullBackOff", e.Headline)
				assert.Contains(t, strings.Join(e.KeyEvidence, "\n"), `Failed: Failed to pull image "acme/web:v9"`)
				evs := e.Detail.Pods[0].Events
				require.Len(t, evs, 2)
				assert.Equal(t, "BackOff", evs[0].Reason, "newest first")
				assert.Empty(t, e.Detail.Pods[0].Logs, "a container that never started has no log to read")
			},
		},
		{
			name: "LivenessProbe", objs: []client.Object{
				node1, worker, live,
				event("worker-unhealthy", live, "Pod", "Warning", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500", 9, -15*time.Second),
				event("worker-killing", live, "Pod", "Normal", "Killing", "Container worker failed liveness probe, will be restarted", 2, -time.Minute),
			},
			logs: map[string]string{
				ns + "/worker-8kx2p/worker":          "GET /healthz 500 db pool exhausted",
				ns + "/worker-8kx2p/worker/previous": "GET /healthz 500 db pool exhausted\nreceived SIGTERM, shutting down",
			},
			labels: alertLabels("alertname", "KubePodCrashLooping", "pod", live.Name),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Contains(t, strings.Join(e.KeyEvidence, "\n"), "Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500")
				assert.Contains(t, e.Text, "Warning Unhealthy x9")
				assert.Equal(t, "DaemonSet", e.Detail.Workloads[0].Kind)
				require.Len(t, e.Detail.Pods[0].Logs, 2, "current and previous")
			},
		},
		{
			name: "PendingUnschedulable", objs: []client.Object{
				report, job, pending,
				event("report-sched", pending, "Pod", "Warning", "FailedScheduling", "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.", 6, -time.Minute),
			},
			labels: alertLabels("alertname", "KubePodNotReady", "pod", pending.Name, "job_name", job.Name),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Contains(t, e.Headline, "is Pending and unschedulable: 0/3 nodes are available: 3 Insufficient memory.")
				assert.Contains(t, strings.Join(e.KeyEvidence, "\n"), "FailedScheduling: 0/3 nodes")
				w := e.Detail.Workloads[0]
				assert.Equal(t, "Job", w.Kind)
				assert.Contains(t, w.Parent, `CronJob/report (schedule "30 2 * * *"`)
			},
		},
		{
			name: "PVCFillingUp", objs: []client.Object{node1, gp3, postgres, data, pg, other},
			labels: alertLabels("alertname", "KubePersistentVolumeFillingUp", "persistentvolumeclaim", "data-postgres-0", "job", "kubelet"),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.True(t, strings.HasPrefix(e.Headline, "PVC "), e.Headline)
				assert.Contains(t, e.Headline, "/data-postgres-0 (10Gi, storage class gp3, expandable) is used by pod postgres-0")
				require.Len(t, e.Detail.PVCs, 1)
				c := e.Detail.PVCs[0]
				assert.Equal(t, "Bound", c.Phase)
				assert.Equal(t, "10Gi", c.Capacity)
				assert.Equal(t, "10Gi", c.Requested)
				require.NotNil(t, c.Expandable)
				assert.True(t, *c.Expandable)
				assert.Equal(t, []string{"ReadWriteOnce"}, c.AccessModes)
				assert.Equal(t, "Filesystem", c.VolumeMode)
				assert.Equal(t, "pvc-0b7c2f3e-data", c.Volume)
				assert.Equal(t, "node-1", c.SelectedNode)
				assert.Equal(t, []string{"postgres-0 (Running)"}, c.UsedBy, "the exporter mounts another claim")
				assert.Contains(t, e.Text, ": Bound, capacity 10Gi, storage class gp3 (expandable), RWO, Filesystem, volume pvc-0b7c2f3e-data\n")
				assert.Contains(t, e.Text, "  Used by 1 pod(s): postgres-0 (Running)\n")
				require.Len(t, e.Detail.Pods, 1)
				assert.Equal(t, "postgres-0", e.Detail.Pods[0].Name)
				require.Len(t, e.Detail.Workloads, 1)
				assert.Equal(t, "StatefulSet", e.Detail.Workloads[0].Kind)
			},
		},
		{
			name: "PVCPendingProvisioningFailed", objs: []client.Object{
				fast, uploads,
				event("uploads-failed", uploads, "PersistentVolumeClaim", "Warning", "ProvisioningFailed",
					`failed to provision volume with StorageClass "fast": rpc error: code = ResourceExhausted desc = maximum number of volumes for this account reached`, 4, -2*time.Minute),
				event("uploads-external", uploads, "PersistentVolumeClaim", "Normal", "ExternalProvisioning",
					"Waiting for a volume to be created either by the external provisioner 'ebs.csi.aws.com' or manually by the system administrator.", 31, -10*time.Second),
			},
			labels: alertLabels("alertname", "KubePersistentVolumeErrors", "persistentvolumeclaim", "uploads"),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Contains(t, e.Headline, `/uploads is Pending: failed to provision volume with StorageClass "fast": rpc error: code = ResourceExhausted`, "the newest warning, not the newest event")
				assert.Contains(t, strings.Join(e.KeyEvidence, "\n"), "ProvisioningFailed: failed to provision volume")
				c := e.Detail.PVCs[0]
				assert.Equal(t, "Pending", c.Phase)
				require.NotNil(t, c.Expandable)
				assert.False(t, *c.Expandable)
				require.Len(t, c.Events, 2)
				assert.Equal(t, "ExternalProvisioning", c.Events[0].Reason, "newest first")
				assert.Contains(t, e.Text, "/uploads: Pending, requested 50Gi, storage class fast (not expandable), RWO, Filesystem\n")
				assert.Contains(t, e.Text, "Warning ProvisioningFailed x4")
				assert.Contains(t, e.Text, "  Used by: no pod\n")
			},
		},
		{
			name: "PodPendingUnboundPVC", objs: []client.Object{
				uploader, scratch, bound,
				event("scratch-failed", scratch, "PersistentVolumeClaim", "Warning", "ProvisioningFailed", `storageclass.storage.k8s.io "fast-ssd" not found`, 12, -30*time.Second),
				event("uploader-sched", uploader, "Pod", "Warning", "FailedScheduling", "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.", 5, -time.Minute),
			},
			labels: alertLabels("alertname", "KubePodNotReady", "pod", "uploader-0"),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Contains(t, e.Headline, "pod uploader-0 is Pending and unschedulable: 0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
				assert.Contains(t, strings.Join(e.KeyEvidence, "\n"), `/scratch used by pod uploader-0 is Pending: storageclass.storage.k8s.io "fast-ssd" not found`)
				require.Len(t, e.Detail.PVCs, 1, "the bound claim explains nothing")
				c := e.Detail.PVCs[0]
				assert.Equal(t, "scratch", c.Name)
				assert.Equal(t, "pod uploader-0", c.For)
				assert.Nil(t, c.Expandable, "a Pending pod's claim costs no StorageClass lookup")
				assert.Contains(t, e.Text, "/scratch (of Pending pod uploader-0): Pending, requested 20Gi, storage class fast-ssd, RWO, Filesystem\n")
				assert.Contains(t, e.Text, `Warning ProvisioningFailed x12`)
			},
		},
		{
			name: "HPAMaxedOut", objs: []client.Object{
				node1, checkout, checkoutRS, checkoutPod, hpa,
				event("checkout-rescale", hpa, "HorizontalPodAutoscaler", "Normal", "SuccessfulRescale", "New size: 10; reason: cpu resource utilization (percentage of request) above target", 1, -6*time.Minute),
			},
			labels: alertLabels("alertname", "KubeHpaMaxedOut", "horizontalpodautoscaler", "checkout", "job", "kube-state-metrics"),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.True(t, strings.HasPrefix(e.Headline, "HPA "), e.Headline)
				assert.Contains(t, e.Headline, "/checkout is at its maximum of 10 replicas (ScalingLimited: TooManyReplicas); cpu 182% of target 70%")
				assert.Contains(t, e.KeyEvidence, "ScalingLimited=True TooManyReplicas: the desired replica count is more than the maximum replica count")
				require.Len(t, e.Detail.HPAs, 1)
				h := e.Detail.HPAs[0]
				assert.Equal(t, "Deployment/checkout", h.Target)
				assert.Equal(t, int32(2), h.MinReplicas)
				assert.Equal(t, int32(10), h.MaxReplicas)
				assert.Equal(t, int32(10), h.CurrentReplicas)
				assert.Equal(t, []envelope.HPAMetricEvidence{{Name: "cpu", Current: "182%", Target: "70%"}}, h.Metrics)
				require.NotNil(t, h.LastScale)
				assert.Contains(t, e.Text, "-> Deployment/checkout: 10 current, 10 desired replicas (min 2, max 10), last scaled ")
				assert.Contains(t, e.Text, "  Metric cpu: 182% (target 70%)\n")
				assert.Contains(t, e.Text, "Normal SuccessfulRescale x1")
				require.Len(t, e.Detail.Workloads, 1, "the scale target")
				assert.Equal(t, "Deployment", e.Detail.Workloads[0].Kind)
				assert.Equal(t, 1, e.Detail.Workloads[0].Pods)
				require.Len(t, e.Detail.Pods, 1)
			},
		},
		{
			name: "NodeNotReady", objs: []client.Object{node2, nodeEvent(node2, "NodeNotReady", "Node node-2 status is now: NodeNotReady", -50*time.Second)},
			labels: map[string]string{"alertname": "KubeNodeNotReady", "node": "node-2", "severity": "warning"},
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Equal(t, "node node-2 is NotReady (NodeStatusUnknown)", e.Headline)
				assert.Contains(t, e.Text, "Ready NodeStatusUnknown: Kubelet stopped posting node status.")
				assert.Contains(t, e.Text, "Normal NodeNotReady x1")
			},
		},
		{
			name: "PodDeleted", objs: []client.Object{node1},
			labels: alertLabels("alertname", "KubePodCrashLooping", "pod", "api-7d9f8b6c5-gone1"),
			check: func(t *testing.T, e *envelope.Enrichment, live bool) {
				t.Helper()
				assert.Equal(t, "pod api-7d9f8b6c5-gone1 no longer exists", e.Headline)
				require.Len(t, e.Errors, 1)
				assert.Contains(t, e.Errors[0], "deleted before we looked")
				assert.False(t, e.Partial)
			},
		},
	}
}

func storageClass(name string, expand bool) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-sc-" + name)}, Provisioner: "ebs.csi.aws.com",
		AllowVolumeExpansion: ptr(expand), VolumeBindingMode: ptr(storagev1.VolumeBindingImmediate),
	}
}

// claim builds a PersistentVolumeClaim; a Bound one has the requested
// capacity.
func claim(name, class, size string, phase corev1.PersistentVolumeClaimPhase) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{ObjectMeta: meta(name, "uid-pvc-"+name), Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr(class),
		VolumeMode: ptr(corev1.PersistentVolumeFilesystem),
		Resources:  corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
	}, Status: corev1.PersistentVolumeClaimStatus{Phase: phase}}
	if phase == corev1.ClaimBound {
		c.Status.AccessModes = c.Spec.AccessModes
		c.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}
	}
	return c
}

func mountClaim(p *corev1.Pod, volume, claim string) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
	}})
}

// maxedHPA is an autoscaler at its maximum of 10 replicas, cpu at 182%
// against a target of 70%, as the HPA controller reports it.
func maxedHPA(name, kind, target string) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta(name, "uid-hpa-"+name), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: kind, Name: target},
		MinReplicas:    ptr(int32(2)), MaxReplicas: 10,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(70))},
		}}},
	}, Status: autoscalingv2.HorizontalPodAutoscalerStatus{
		CurrentReplicas: 10, DesiredReplicas: 10, LastScaleTime: ptr(at(-6 * time.Minute)),
		CurrentMetrics: []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
			Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(int32(182)), AverageValue: ptr(resource.MustParse("182m"))},
		}}},
		Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
			{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "ReadyForNewScale", Message: "recommended size matches current size", LastTransitionTime: at(-6 * time.Minute)},
			{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionTrue, Reason: "ValidMetricFound", Message: "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)", LastTransitionTime: at(-time.Hour)},
			{Type: autoscalingv2.ScalingLimited, Status: corev1.ConditionTrue, Reason: "TooManyReplicas", Message: "the desired replica count is more than the maximum replica count", LastTransitionTime: at(-6 * time.Minute)},
		},
	}}
}

// webhook builds the notification Alertmanager would send for labels.
func webhook(labels ...map[string]string) *envelope.Webhook {
	w := &envelope.Webhook{Version: "4", GroupKey: `{}:{alertname="test"}`, Status: "firing", Receiver: "smartmon"}
	for i, l := range labels {
		w.Alerts = append(w.Alerts, envelope.Alert{
			Status: "firing", Labels: l, Annotations: map[string]string{"summary": "test"},
			StartsAt: t0.Add(-5 * time.Minute), Fingerprint: fmt.Sprintf("fp%04d", i),
		})
	}
	w.CommonLabels = map[string]string{}
	w.CommonAnnotations = map[string]string{}
	w.GroupLabels = map[string]string{}
	return w
}
