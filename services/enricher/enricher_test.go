package enricher

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/redact/redacttest"
)

func testConfig() Config {
	var c Config
	c.Defaults()
	c.Env = true
	c.CallTimeout = 2 * time.Second
	c.NotificationTimeout = 10 * time.Second
	return c
}

// newTestStage builds a stage without JetStream for calling Enrich.
func newTestStage(t testing.TB, cfg Config, opts ...Option) *Stage {
	t.Helper()
	s, err := New(cfg, testDeps(t), append([]Option{WithClock(func() time.Time { return t0 })}, opts...)...)
	require.NoError(t, err)
	return s
}

func fakeClient(t testing.TB, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	return fake.NewClientset(objs...)
}

func runtimeObjects(sc scenario) []runtime.Object {
	out := make([]runtime.Object, 0, len(sc.objs))
	for _, o := range sc.objs {
		out = append(out, o.DeepCopyObject())
	}
	return out
}

func TestScenariosWithFakeClientset(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			kc := fakeClient(t, runtimeObjects(sc)...)
			s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{logs: sc.logs}))
			used := map[need]bool{}
			var mu sync.Mutex
			s.gather.used = func(n need) { mu.Lock(); used[n] = true; mu.Unlock() }
			enr, transient := s.Enrich(context.Background(), webhook(sc.labels))
			require.NoError(t, transient)
			require.True(t, enr.ClusterAccess)
			t.Logf("headline: %s\nkey: %q\n%s", enr.Headline, enr.KeyEvidence, enr.Text)
			sc.check(t, enr, false)
			assert.Positive(t, enr.Detail.APICalls)
			assert.LessOrEqual(t, enr.Detail.Bytes, int(testConfig().Budget))
			assertPermissionsDeclared(t, used)
		})
	}
}

// assertPermissionsDeclared checks every permission a scenario used is in
// the documented rules.
func assertPermissionsDeclared(t *testing.T, used map[need]bool) {
	t.Helper()
	declared := map[string]bool{}
	for _, p := range Permissions(RequiredRules()) {
		declared[p] = true
	}
	for n := range used {
		assert.True(t, declared[n.Group+"/"+n.Resource+":"+n.Verb], "permission %v used but not in the RBAC rules", n)
	}
}

func rbacFile(t testing.TB) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "smart-k8s-monitor", "files", "enricher-rbac-rules.yaml"))
	require.NoError(t, err)
	var rules []rbacv1.PolicyRule
	require.NoError(t, yaml.UnmarshalStrict(data, &rules))
	return rules
}

func TestRBACRulesFileMatchesCode(t *testing.T) {
	rules := rbacFile(t)
	assert.Equal(t, Permissions(RequiredRules()), Permissions(rules))
	for _, r := range rules {
		assert.NotContains(t, r.Resources, "secrets", "the enricher must not read Secrets")
		assert.NotContains(t, r.Resources, "*")
		for _, v := range r.Verbs {
			assert.Contains(t, []string{"get", "list"}, v, "read-only verbs only")
		}
	}
}

func TestForbiddenIsRecordedOnceWithTheMissingRule(t *testing.T) {
	sc := scenarios()[0]
	kc := fakeClient(t, runtimeObjects(sc)...)
	kc.PrependReactor("list", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", fmt.Errorf("user cannot list events"))
	})
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{logs: sc.logs}))
	enr, transient := s.Enrich(context.Background(), webhook(sc.labels))
	require.NoError(t, transient, "403 is not worth a retry")
	require.Len(t, enr.Errors, 1, "recorded once although events are listed for the pod and the deployment: %q", enr.Errors)
	assert.Contains(t, enr.Errors[0], `missing RBAC rule {apiGroups: [""], resources: [events], verbs: [list]}`)
	assert.Contains(t, enr.Headline, "restarted 4 times", "the rest of the evidence is still there")
}

func TestSlowAPITimesOutAndIsTransient(t *testing.T) {
	sc := scenarios()[0]
	kc := fakeClient(t, runtimeObjects(sc)...)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	kc.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release // an API server that does not answer
		return false, nil, nil
	})
	cfg := testConfig()
	cfg.CallTimeout = 100 * time.Millisecond
	s := newTestStage(t, cfg, WithClient(kc, &testLogs{logs: sc.logs}))
	start := time.Now()
	enr, transient := s.Enrich(context.Background(), webhook(sc.labels))
	require.Error(t, transient)
	assert.Less(t, time.Since(start), 2*time.Second, "the per-call timeout bounds the wait")
	assert.True(t, enr.Partial)
	require.NotEmpty(t, enr.Errors)
	assert.Contains(t, enr.Errors[0], "context deadline exceeded (transient)")
}

func TestServerErrorIsTransientNotFoundIsNot(t *testing.T) {
	kc := fakeClient(t)
	kc.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(fmt.Errorf("etcdserver: leader changed"))
	})
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(map[string]string{"alertname": "KubeNodeNotReady", "node": "node-9"}))
	require.Error(t, transient)
	assert.True(t, enr.Partial)

	enr, transient = s.Enrich(context.Background(), webhook(alertLabels("pod", "nope")))
	require.NoError(t, transient)
	assert.False(t, enr.Partial)
}

// TestLargeGroupIsGatheredOncePerWorkload: 50 pods of one Deployment in
// one notification cost a handful of API calls, not 50 of each kind.
func TestLargeGroupIsGatheredOncePerWorkload(t *testing.T) {
	objs, labels := largeGroup(50)
	kc := fakeClient(t, objs...)
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(labels...))
	require.NoError(t, transient)
	require.Len(t, enr.Detail.Workloads, 1)
	w := enr.Detail.Workloads[0]
	assert.Equal(t, 50, w.Pods)
	assert.Equal(t, 3, w.PodsShown)
	assert.Len(t, w.MorePods, 47)
	assert.Len(t, enr.Detail.Pods, 3)
	assert.Contains(t, enr.Text, "+47 more")
	assert.LessOrEqual(t, enr.Detail.APICalls, 20, "API calls for a 50-pod group")
	t.Logf("API calls for a 50-pod group: %d, evidence bytes: %d", enr.Detail.APICalls, enr.Detail.Bytes)
}

func largeGroup(n int) ([]runtime.Object, []map[string]string) {
	api := deployment("api", "2", "acme/api:v1.8")
	rs := replicaSet(api, "7d9f8b6c5", "2", "acme/api:v1.8", -12*time.Minute)
	objs := []runtime.Object{api, rs, node("node-1", corev1.ConditionTrue, "KubeletReady", "")}
	var labels []map[string]string
	for i := range n {
		name := fmt.Sprintf("api-7d9f8b6c5-%05d", i)
		p := pod(name, rs, rs.Spec.Template.Labels, container("api", "acme/api:v1.8", "256Mi"), "node-1", corev1.PodRunning,
			&corev1.ContainerStatus{RestartCount: int32(i % 5), State: waiting("CrashLoopBackOff", "back-off"), LastTerminationState: terminated(1, "Error", -45*time.Second, -42*time.Second)})
		objs = append(objs, p)
		labels = append(labels, alertLabels("alertname", "KubePodCrashLooping", "pod", name))
	}
	return objs, labels
}

func TestWorkloadLabelWithoutPod(t *testing.T) {
	objs, _ := largeGroup(5)
	kc := fakeClient(t, objs...)
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(alertLabels("alertname", "KubeDeploymentReplicasMismatch", "deployment", "api")))
	require.NoError(t, transient)
	require.Len(t, enr.Detail.Workloads, 1)
	assert.Equal(t, 5, enr.Detail.Workloads[0].Pods)
	assert.Len(t, enr.Detail.Pods, 3)
}

func TestBudgetTrimsLogsFirst(t *testing.T) {
	sc := scenarios()[0]
	long := strings.Repeat("2026-11-26T09:59:15Z INFO processing request id=42 took 12ms and everything was fine\n", 40) + "FATAL: config key DB_HOST missing"
	logs := map[string]string{ns + "/api-7d9f8b6c5-x2x7k/api/previous": long}
	cfg := testConfig()
	cfg.Budget = 4096
	s := newTestStage(t, cfg, WithClient(fakeClient(t, runtimeObjects(sc)...), &testLogs{logs: logs}))
	enr, _ := s.Enrich(context.Background(), webhook(sc.labels))
	assert.LessOrEqual(t, enr.Detail.Bytes, 4096)
	assert.NotEmpty(t, enr.Detail.Trimmed)
	assert.Contains(t, enr.Text, "FATAL: config key DB_HOST missing", "the last lines survive trimming")
	assert.Contains(t, enr.Headline, "restarted 4 times")
}

// TestPlantedSecretsNeverLeave plants the corpus in logs, events,
// annotations, env and labels and checks the published envelope.
func TestPlantedSecretsNeverLeave(t *testing.T) {
	samples := redacttest.Planted(t)
	sc := scenarios()[0]
	objs := runtimeObjects(sc)
	var logLines []string
	annotations := map[string]string{}
	labels := map[string]string{}
	crash := objs[4].(*corev1.Pod)
	for i, s := range samples {
		switch s.Where {
		case "log":
			logLines = append(logLines, s.Text)
		case "event":
			objs = append(objs, event(fmt.Sprintf("planted-%d", i), crash, "Pod", "Warning", "Planted", s.Text, 1, -time.Duration(i)*time.Second))
		case "annotation":
			annotations[fmt.Sprintf("note_%d", i)] = s.Text
		case "label":
			labels[fmt.Sprintf("label_%d", i)] = s.Text
		case "env":
			name, value, ok := strings.Cut(s.Text, "=")
			if !ok {
				name, value, _ = strings.Cut(s.Text, ": ")
			}
			crash.Spec.Containers[0].Env = append(crash.Spec.Containers[0].Env, corev1.EnvVar{Name: name, Value: value})
			annotations[fmt.Sprintf("env_%d", i)] = s.Text
		}
	}
	logs := map[string]string{ns + "/" + crash.Name + "/api/previous": strings.Join(logLines, "\n")}
	cfg := testConfig()
	cfg.Events = 100
	cfg.LogLines = 1000
	cfg.LogBytes = 1 << 20
	cfg.Budget = 1 << 20
	s := newTestStage(t, cfg, WithClient(fakeClient(t, objs...), &testLogs{logs: logs}))
	w := webhook(sc.labels)
	for k, v := range labels {
		w.Alerts[0].Labels[k] = v
		w.CommonLabels[k] = v
	}
	for k, v := range annotations {
		w.Alerts[0].Annotations[k] = v
		w.CommonAnnotations[k] = v
	}
	enr, transient := s.Enrich(context.Background(), w)
	require.NoError(t, transient)
	counts := redact.Counts{}
	counts.Add(enr.Redactions)
	RedactNotification(s.red, w, counts)
	env := &envelope.Envelope{V: 1, ID: "x", Notification: *w, Enrichment: enr}
	data, err := json.Marshal(env)
	require.NoError(t, err)
	out := string(data)
	for _, smp := range samples {
		assert.NotContains(t, out, smp.Secret, "%s planted in %s survived", smp.Kind, smp.Where)
		// JSON escapes some characters; check the escaped form too.
		esc, _ := json.Marshal(smp.Secret)
		assert.NotContains(t, out, strings.Trim(string(esc), `"`), "%s planted in %s survived (escaped)", smp.Kind, smp.Where)
	}
	assert.Greater(t, counts.Total(), len(samples))
	assert.Contains(t, enr.Text, "[REDACTED:")
}

func TestNoClusterAccessStillRedactsTheAlert(t *testing.T) {
	s := newTestStage(t, testConfig(), WithAccess(Access{Unavailable: "no cluster access: not running in a cluster and no kubeconfig found"}))
	w := webhook(alertLabels("pod", "x"))
	w.Alerts[0].Annotations["description"] = "DB at postgres://app:hunter2-Secret@db:5432 refused"
	enr, transient := s.Enrich(context.Background(), w)
	require.NoError(t, transient)
	assert.False(t, enr.ClusterAccess)
	assert.Equal(t, "no cluster access: not running in a cluster and no kubeconfig found", enr.Unavailable)
	counts := redact.Counts{}
	RedactNotification(s.red, w, counts)
	assert.Equal(t, "DB at postgres://app:[REDACTED:url-credentials]@db:5432 refused", w.Alerts[0].Annotations["description"])
	detail, err := s.Check(context.Background())
	require.NoError(t, err)
	assert.Contains(t, detail, "no cluster access")
}

func TestResolveAccess(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("HOME", t.TempDir())
	cfg := testConfig()
	cfg.Kubeconfig = filepath.Join(t.TempDir(), "missing")
	a := ResolveAccess(cfg)
	assert.Nil(t, a.Client)
	assert.Contains(t, a.Unavailable, "no cluster access: ")

	cfg.Disabled = true
	assert.Contains(t, ResolveAccess(cfg).Unavailable, "disabled by configuration")

	kubeconfig := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:6443"}
- name: c2
  cluster: {server: "https://10.9.9.9:6443"}
users:
- name: u
  user: {token: abc}
contexts:
- name: one
  context: {cluster: c1, user: u}
- name: two
  context: {cluster: c2, user: u}
current-context: one
`), 0o600))
	cfg = testConfig()
	cfg.Kubeconfig = kubeconfig
	a = ResolveAccess(cfg)
	require.NotNil(t, a.Client)
	assert.Contains(t, a.Where, `https://127.0.0.1:6443 (kubeconfig context "one")`)
	cfg.Context = "two"
	a = ResolveAccess(cfg)
	assert.Contains(t, a.Where, `https://10.9.9.9:6443 (kubeconfig context "two")`)
}

func TestConfigValidate(t *testing.T) {
	c := testConfig()
	require.NoError(t, c.Validate())
	c.CallTimeout = time.Minute
	c.Budget = 100
	c.Redact.Extra = []redact.Pattern{{Name: "x", Regexp: "("}}
	err := c.Validate()
	require.Error(t, err)
	for _, want := range []string{"call_timeout", "budget", "redact.extra[0].regexp"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestAlertContainerLogIsReadFirst(t *testing.T) {
	objs, _ := largeGroup(1)
	p := objs[3].(*corev1.Pod)
	p.Status.ContainerStatuses[0].RestartCount = 2
	p.Spec.Containers = append(p.Spec.Containers, container("proxy", "envoy:1.33", "64Mi"))
	p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
		Name: "proxy", Image: "envoy:1.33", Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-time.Hour)}},
	})
	logs := &testLogs{logs: map[string]string{
		ns + "/" + p.Name + "/proxy":        "upstream connect error or disconnect/reset before headers",
		ns + "/" + p.Name + "/api/previous": "FATAL: boom",
	}}
	s := newTestStage(t, testConfig(), WithClient(fakeClient(t, objs...), logs))
	enr, err := s.Enrich(context.Background(), webhook(alertLabels("alertname", "HighLatency", "pod", p.Name, "container", "proxy")))
	require.NoError(t, err)
	got := enr.Detail.Pods[0].Logs
	require.Len(t, got, 2)
	assert.Equal(t, "proxy", got[0].Container, "the alert's container first")
	assert.Equal(t, "upstream connect error or disconnect/reset before headers", got[0].Text)
	assert.Equal(t, "api", got[1].Container)
	assert.True(t, got[1].Previous)
}

func TestReplicaSetFailedCreateEventsAreShown(t *testing.T) {
	web := deployment("web", "3", "acme/web:v3")
	rs := replicaSet(web, "55d7c9c8f4", "3", "acme/web:v3", -5*time.Minute)
	rs.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate"}}
	objs := []runtime.Object{web, rs, event("web-quota", rs, "ReplicaSet", "Warning", "FailedCreate",
		`Error creating: pods "web-55d7c9c8f4-abcde" is forbidden: exceeded quota: compute, requested: limits.memory=256Mi, used: limits.memory=2Gi, limited: limits.memory=2Gi`, 14, -time.Minute)}
	// A pod from before the quota ran out carries the owner chain.
	p := pod("web-55d7c9c8f4-old01", rs, rs.Spec.Template.Labels, container("web", "acme/web:v3", "256Mi"), "node-1", corev1.PodRunning,
		&corev1.ContainerStatus{Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-time.Hour)}}})
	objs = append(objs, p)
	s := newTestStage(t, testConfig(), WithClient(fakeClient(t, objs...), &testLogs{}))
	enr, err := s.Enrich(context.Background(), webhook(alertLabels("alertname", "KubeDeploymentReplicasMismatch", "pod", p.Name)))
	require.NoError(t, err)
	assert.Contains(t, enr.Text, "Warning FailedCreate x14")
	assert.Contains(t, enr.Text, "exceeded quota: compute")
}

// TestRolloutReadsTheDeploymentOnce: pods of the old and the new
// ReplicaSet of one Deployment lead to the Deployment, its ReplicaSets and
// its events once, not once per ReplicaSet.
func TestRolloutReadsTheDeploymentOnce(t *testing.T) {
	web := deployment("web", "3", "acme/web:v3")
	oldRS := replicaSet(web, "6f8b9d7c5", "2", "acme/web:v2", -time.Hour)
	newRS := replicaSet(web, "55d7c9c8f4", "3", "acme/web:v3", -5*time.Minute)
	running := &corev1.ContainerStatus{Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-time.Hour)}}}
	pOld := pod("web-6f8b9d7c5-aaaaa", oldRS, oldRS.Spec.Template.Labels, container("web", "acme/web:v2", "256Mi"), "node-1", corev1.PodRunning, running)
	pNew := pod("web-55d7c9c8f4-bbbbb", newRS, newRS.Spec.Template.Labels, container("web", "acme/web:v3", "256Mi"), "node-1", corev1.PodRunning, running)
	kc := fakeClient(t, web, oldRS, newRS, pOld, pNew)
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
	enr, err := s.Enrich(context.Background(), webhook(
		alertLabels("alertname", "KubePodNotReady", "pod", pOld.Name),
		alertLabels("alertname", "KubePodNotReady", "pod", pNew.Name)))
	require.NoError(t, err)
	calls := countCalls(&kc.Fake)
	assert.Equal(t, 2, calls["get replicasets"], "each ReplicaSet is read")
	assert.Equal(t, 1, calls["get deployments"], "the Deployment is read once")
	assert.Equal(t, 1, calls["list replicasets"], "its rollout history is read once")
	require.Len(t, enr.Detail.Workloads, 1)
	w := enr.Detail.Workloads[0]
	assert.Equal(t, "Deployment", w.Kind)
	assert.Equal(t, 2, w.Pods)
	assert.Len(t, enr.Detail.Pods, 2)
}

// TestRunsOfOneCronJobReadItOnce: failed runs of one CronJob in a group
// share one CronJob lookup.
func TestRunsOfOneCronJobReadItOnce(t *testing.T) {
	report := &batchv1.CronJob{ObjectMeta: meta("report", "uid-cj-report"), Spec: batchv1.CronJobSpec{Schedule: "30 2 * * *"}}
	objs := []runtime.Object{report}
	var labels []map[string]string
	for _, name := range []string{"report-29342150", "report-29343590"} {
		j := &batchv1.Job{
			ObjectMeta: meta(name, "uid-job-"+name, report), Spec: batchv1.JobSpec{Selector: selector(name)},
			Status: batchv1.JobStatus{Failed: 3},
		}
		objs = append(objs, j)
		labels = append(labels, alertLabels("alertname", "KubeJobFailed", "job_name", name))
	}
	kc := fakeClient(t, objs...)
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
	enr, err := s.Enrich(context.Background(), webhook(labels...))
	require.NoError(t, err)
	assert.Equal(t, 2, countCalls(&kc.Fake)["get jobs"])
	assert.Equal(t, 1, countCalls(&kc.Fake)["get cronjobs"], "one CronJob, read once")
	require.Len(t, enr.Detail.Workloads, 2)
	for _, w := range enr.Detail.Workloads {
		assert.Equal(t, `CronJob/report (schedule "30 2 * * *", suspended false)`, w.Parent, w.Name)
	}
}

func TestConfigFromYAMLAndEnv(t *testing.T) {
	var c Config
	require.NoError(t, config.Decode([]byte(`
kubeconfig: /etc/kube/config
context: staging
qps: 5
burst: 10
call_timeout: 2s
notification_timeout: 15s
log_lines: 20
log_bytes: 2KiB
budget: 16KiB
env: true
redact:
  extra:
    - {name: acme-key, regexp: 'acme_[0-9a-f]{8}'}
`), &c))
	c.Defaults()
	require.NoError(t, c.ApplyEnv(config.MapEnv(map[string]string{"KUBECONFIG": "/other", "SMARTMON_KUBE_CONTEXT": "prod"})))
	require.NoError(t, c.Validate())
	assert.Equal(t, "/etc/kube/config", c.Kubeconfig, "the file's explicit kubeconfig wins over $KUBECONFIG")
	assert.Equal(t, "prod", c.Context)
	assert.Equal(t, config.ByteSize(2048), c.LogBytes)
	assert.Equal(t, config.ByteSize(16384), c.Budget)
	assert.Equal(t, 10, c.Events, "default")

	require.Error(t, config.Decode([]byte("log_line: 5\n"), &Config{}), "unknown keys are errors")
	require.Error(t, (&Config{}).ApplyEnv(config.MapEnv(map[string]string{"SMARTMON_ENRICHER_DISABLED": "maybe"})))
}

func TestSkipNodesForNamespacedRBAC(t *testing.T) {
	sc := scenarios()[0]
	kc := fakeClient(t, runtimeObjects(sc)...)
	cfg := testConfig()
	cfg.SkipNodes = true
	s := newTestStage(t, cfg, WithClient(kc, &testLogs{logs: sc.logs}))
	enr, err := s.Enrich(context.Background(), webhook(sc.labels))
	require.NoError(t, err)
	assert.Empty(t, enr.Detail.Nodes)
	for _, a := range kc.Actions() {
		assert.NotEqual(t, "nodes", a.GetResource().Resource)
	}
}

// TestBigNamespaceIsListedInPagesUntilTheNamedPodsAreFound: an alert group
// of a few pods in a namespace of 1,200 costs pages of 500 until the named
// pods are found, never one unbounded LIST.
func TestBigNamespaceIsListedInPagesUntilTheNamedPodsAreFound(t *testing.T) {
	objs, labels := largeGroup(1200)
	for _, tc := range []struct {
		name  string
		pods  []int
		pages int
	}{
		{"all on the first page", []int{1, 2, 3, 4}, 1},
		{"one on the second page", []int{1, 2, 3, 700}, 2},
		{"one that is gone", []int{1, 2, 3, 99999}, 3}, // reads to the end, then reports it gone
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc := fakeClient(t, objs...)
			var pages []string
			kc.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				la := a.(k8stesting.ListActionImpl)
				if la.ListOptions.Limit == 0 {
					return false, nil, nil // the workload's own label-selector LIST
				}
				pages = append(pages, la.ListOptions.Continue)
				all, err := kc.Tracker().List(corev1.SchemeGroupVersion.WithResource("pods"), corev1.SchemeGroupVersion.WithKind("Pod"), a.GetNamespace())
				if err != nil {
					return true, nil, err
				}
				items := all.(*corev1.PodList).Items
				slices.SortFunc(items, func(x, y corev1.Pod) int { return strings.Compare(x.Name, y.Name) })
				from := 0
				if c := la.ListOptions.Continue; c != "" {
					from, _ = strconv.Atoi(c)
				}
				to := min(from+int(la.ListOptions.Limit), len(items))
				out := &corev1.PodList{Items: items[from:to]}
				if to < len(items) {
					out.Continue = strconv.Itoa(to)
				}
				return true, out, nil
			})
			var ls []map[string]string
			for _, i := range tc.pods {
				if i < len(labels) {
					ls = append(ls, labels[i])
				} else {
					ls = append(ls, alertLabels("alertname", "KubePodCrashLooping", "pod", fmt.Sprintf("api-7d9f8b6c5-%05d", i)))
				}
			}
			s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
			enr, transient := s.Enrich(context.Background(), webhook(ls...))
			require.NoError(t, transient)
			assert.Len(t, pages, tc.pages, "pages listed")
			found := 0
			for _, p := range enr.Detail.Pods {
				if !p.Gone {
					found++
				}
			}
			assert.GreaterOrEqual(t, found, 3)
		})
	}
}

// TestGonePodFallsBackToTheWorkloadTheAlertNames: a rollout replaced the
// alert's pod before we looked; the alert also names its Deployment, so the
// evidence shows the Deployment and its current pods instead of nothing.
func TestGonePodFallsBackToTheWorkloadTheAlertNames(t *testing.T) {
	objs, _ := largeGroup(4)
	kc := fakeClient(t, objs...)
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(
		alertLabels("alertname", "KubePodCrashLooping", "pod", "api-7d9f8b6c5-gone1", "deployment", "api")))
	require.NoError(t, transient)
	require.Len(t, enr.Detail.Workloads, 1)
	assert.Equal(t, "Deployment", enr.Detail.Workloads[0].Kind)
	assert.Equal(t, 4, enr.Detail.Workloads[0].Pods)
	assert.Contains(t, strings.Join(enr.Errors, "\n"), "api-7d9f8b6c5-gone1 not found")
}

func TestDedupeCutsQuotesOnARuneBoundary(t *testing.T) {
	long := strings.Repeat("a", 299) + "é" + strings.Repeat("b", 50) // é straddles byte 300
	got := dedupe([]string{long, long}, 5)
	require.Len(t, got, 1)
	assert.True(t, utf8.ValidString(got[0]), "quote is valid UTF-8")
	assert.Equal(t, strings.Repeat("a", 299)+"…", got[0])
}

func TestJobWithoutBackoffLimitShowsTheAPIDefault(t *testing.T) {
	assert.Equal(t, int32(6), ptrOr(nil, jobBackoffLimitDefault))
	three := int32(3)
	assert.Equal(t, int32(3), ptrOr(&three, jobBackoffLimitDefault))
	assert.Equal(t, int32(1), ptrInt(nil), "replicas default to 1")
}
