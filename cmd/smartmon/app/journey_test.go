package app

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/internal/proctest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/enricher"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/notifiertest"
)

// planted is an AWS secret key in the crashing container's log: it must
// not reach the model or the chat.
const planted = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

type logs struct{}

func (logs) Tail(_ context.Context, _, _, _ string, previous bool, _ int, _ int64) (string, bool, error) {
	if !previous {
		return "", false, nil
	}
	return "2026-11-26T02:46:30Z starting payments-api v1.8.1\n" +
		"2026-11-26T02:46:30Z loaded AWS_SECRET_ACCESS_KEY=" + planted + "\n" +
		"2026-11-26T02:46:31Z FATAL: config key DB_HOST missing\n", false, nil
}

// crashLoopCluster is the cluster behind envelope.SampleCrashLoop: a
// Deployment at revision 14 whose new image exits 1 at start.
func crashLoopCluster(now time.Time) []runtime.Object {
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	ctrl := true
	labels := map[string]string{"app": "payments-api"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: "payments-api", Namespace: "payments", UID: "dep-1",
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "14"}, CreationTimestamp: ago(30 * 24 * time.Hour),
		},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "registry.example/payments-api:v1.8.1"}}},
		}},
	}
	rs := func(hash, rev, image string, created time.Duration) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Name: "payments-api-" + hash, Namespace: "payments", UID: k8stypes.UID("rs-" + hash),
				Labels: labels, CreationTimestamp: ago(created),
				Annotations:     map[string]string{"deployment.kubernetes.io/revision": rev},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "payments-api", UID: "dep-1", Controller: &ctrl}},
			},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: image}}},
			}},
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "payments-api-7d9f8b6c5-x2x7k", Namespace: "payments", UID: "pod-1", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "payments-api-7d9f8b6c5", UID: "rs-7d9f8b6c5", Controller: &ctrl}},
		},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{
			Name: "api", Image: "registry.example/payments-api:v1.8.1",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBurstable, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "api", Image: "registry.example/payments-api:v1.8.1", RestartCount: 7,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container=api"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: "Error",
				StartedAt: ago(43 * time.Second), FinishedAt: ago(42 * time.Second),
			}},
		}}},
	}
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "payments-api-7d9f8b6c5-x2x7k.1", Namespace: "payments"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: pod.Name, Namespace: "payments", UID: "pod-1"},
		Type:           corev1.EventTypeWarning, Reason: "BackOff", Message: "Back-off restarting failed container api in pod payments-api-7d9f8b6c5-x2x7k",
		Count: 23, FirstTimestamp: ago(10 * time.Minute), LastTimestamp: ago(20 * time.Second),
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
	}}}
	return []runtime.Object{
		dep, rs("7d9f8b6c5", "14", "registry.example/payments-api:v1.8.1", 12*time.Minute),
		rs("5c4b3a291", "13", "registry.example/payments-api:v1.8.0", 9*24*time.Hour), pod, ev, node,
	}
}

// TestTheThreeAMMessage runs the whole journey: Alertmanager's notification
// for a crash-looping pod, the cluster's evidence (with a secret in the
// log and a mention in an annotation), a model's advice, and the Discord
// message the on-call engineer reads.
func TestTheThreeAMMessage(t *testing.T) {
	discord := notifiertest.NewDiscord(t, notifiertest.Rate{Burst: 5, Every: 400 * time.Millisecond})
	llm := fakellm.NewOllama(t, fakellm.WithModels("mistral"))
	cfg := testConfig(t, t.TempDir(), map[string]string{
		"SMARTMON_DISCORD_WEBHOOK_URL": discord.URL(), "SMARTMON_OLLAMA_URL": llm.URL, "SMARTMON_ADVICE_DEADLINE": "20s",
	})
	on := true
	cfg.Notifier.Console = &on
	console := &proctest.SyncBuffer{}
	now := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, zaptest.NewLogger(t), Options{
		Console:  console,
		Enricher: []enricher.Option{enricher.WithClient(fake.NewClientset(crashLoopCluster(now)...), logs{})},
	})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	w := envelope.SampleCrashLoop(now.Add(-10*time.Minute), false)
	w.Alerts[0].Annotations["description"] = "@everyone payments is down <@&123456> " + w.Alerts[0].Annotations["description"]
	w.CommonAnnotations = w.Alerts[0].Annotations
	post(t, a.IngestURL(), w)

	require.Eventually(t, func() bool { return len(discord.Accepted()) >= 1 }, 30*time.Second, 20*time.Millisecond)
	body := discord.Accepted()[0].Body
	t.Logf("console:\n%s", console.String())
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, body, "", "  "))
	t.Logf("discord payload:\n%s", pretty.String())

	text := string(body)
	var p struct {
		Embeds []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			Fields      []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"fields"`
		} `json:"embeds"`
		AllowedMentions struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"`
	}
	require.NoError(t, json.Unmarshal(body, &p))
	require.Len(t, p.Embeds, 1)
	e := p.Embeds[0]
	assert.Contains(t, e.Title, "KubePodCrashLooping")
	for _, want := range []string{
		"container api restarted 7 times; last exit 1 (Error)",                     // the headline
		"FATAL: config key DB_HOST missing",                                        // the previous container's log
		"payments-api:v1.8.0 -> registry.example/payments-api:v1.8.1 (revision 13", // the rollout
		"**Likely cause** (confidence: medium)",
		"kubectl logs deploy/api --previous",
		"⚠ `kubectl rollout restart deploy/api` (changes the cluster)", // risky, whatever the model said
	} {
		assert.Contains(t, e.Description, want)
	}
	fields := map[string]string{}
	for _, f := range e.Fields {
		fields[f.Name] = f.Value
	}
	assert.Equal(t, map[string]string{
		"Namespace": "payments", "Workload": "Deployment payments-api", "Pod": "payments-api-7d9f8b6c5-x2x7k",
		"Container": "api", "Reason": "CrashLoopBackOff", "Restarts": "7", "Severity": "critical",
	}, fields)
	assert.NotNil(t, p.AllowedMentions.Parse)
	assert.Empty(t, p.AllowedMentions.Parse, "Discord is told to parse no mentions at all")
	assert.Empty(t, discord.Pings(), "nothing in the message can ping anyone")
	assert.Empty(t, discord.Violations())

	for _, r := range llm.Requests() {
		assert.NotContains(t, r.Text(), planted, "the secret reached the model")
		assert.Contains(t, r.Text(), "DB_HOST", "the model saw the evidence")
	}
	assert.NotContains(t, text, planted, "the secret reached the chat")
	assert.NotContains(t, console.String(), planted)
	assert.Contains(t, console.String(), "FIRING")
	assert.True(t, strings.Contains(text, "REDACTED") || !strings.Contains(text, "AWS_SECRET_ACCESS_KEY"))
}
