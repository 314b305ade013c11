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
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

func scenarioNamed(t *testing.T, name string) scenario {
	t.Helper()
	for _, sc := range scenarios() {
		if sc.name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %s", name)
	return scenario{}
}

// countCalls counts the API requests by verb and resource.
func countCalls(kc *k8stesting.Fake) map[string]int {
	out := map[string]int{}
	for _, a := range kc.Actions() {
		out[a.GetVerb()+" "+a.GetResource().Resource]++
	}
	return out
}

func TestHPAWhoseTargetIsGone(t *testing.T) {
	hpa := maxedHPA("api", "Deployment", "api-v1")
	kc := fakeClient(t, hpa)
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(alertLabels("alertname", "KubeHpaReplicasMismatch", "horizontalpodautoscaler", "api")))
	require.NoError(t, transient, "404 is data, not a reason to retry")
	assert.Equal(t, "HPA prod/api scales Deployment/api-v1, which does not exist", enr.Headline)
	require.Len(t, enr.Detail.HPAs, 1)
	assert.True(t, enr.Detail.HPAs[0].TargetGone)
	assert.Equal(t, []string{"deployment prod/api-v1 not found"}, enr.Errors)
	assert.Contains(t, enr.Text, "  Scale target Deployment/api-v1: not found\n")
	assert.Contains(t, enr.Text, "  Metric cpu: 182% (target 70%)\n", "the autoscaler's own evidence is still there")
	assert.False(t, enr.Partial)
}

func TestHPAGone(t *testing.T) {
	s := newTestStage(t, testConfig(), WithClient(fakeClient(t), &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(alertLabels("alertname", "KubeHpaMaxedOut", "horizontalpodautoscaler", "api")))
	require.NoError(t, transient)
	assert.Equal(t, "HPA prod/api no longer exists", enr.Headline)
	assert.Equal(t, []string{"horizontalpodautoscaler prod/api not found: it was deleted before we looked"}, enr.Errors)
}

func TestHPAHeadlines(t *testing.T) {
	cond := func(typ, status, reason, msg string) envelope.ConditionEvidence {
		return envelope.ConditionEvidence{Type: typ, Status: status, Reason: reason, Message: msg}
	}
	cpu := []envelope.HPAMetricEvidence{{Name: "cpu", Current: "35%", Target: "70%"}}
	for _, tc := range []struct {
		name string
		h    envelope.HPAEvidence
		want string
	}{
		{"metrics unavailable", envelope.HPAEvidence{
			MinReplicas: 2, MaxReplicas: 10, CurrentReplicas: 3, DesiredReplicas: 3, Metrics: []envelope.HPAMetricEvidence{{Name: "cpu", Target: "70%"}},
			Conditions: []envelope.ConditionEvidence{
				cond("AbleToScale", "True", "SucceededGetScale", ""),
				cond("ScalingActive", "False", "FailedGetResourceMetric", "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"),
			},
		}, "HPA prod/api cannot scale (ScalingActive=False FailedGetResourceMetric): the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"},
		{
			"mismatch",
			envelope.HPAEvidence{MinReplicas: 2, MaxReplicas: 10, CurrentReplicas: 3, DesiredReplicas: 6, Metrics: cpu},
			"HPA prod/api has 3 replicas but wants 6 (min 2, max 10); cpu 35% of target 70%",
		},
		{
			"at minimum",
			envelope.HPAEvidence{
				MinReplicas: 2, MaxReplicas: 10, CurrentReplicas: 2, DesiredReplicas: 2, Metrics: cpu,
				Conditions: []envelope.ConditionEvidence{cond("ScalingLimited", "True", "TooFewReplicas", "the desired replica count is less than the minimum replica count")},
			},
			"HPA prod/api is at its minimum of 2 replicas (ScalingLimited: TooFewReplicas); cpu 35% of target 70%",
		},
		{
			"steady",
			envelope.HPAEvidence{MinReplicas: 2, MaxReplicas: 10, CurrentReplicas: 4, DesiredReplicas: 4, Metrics: cpu},
			"HPA prod/api has 4 replicas (min 2, max 10); cpu 35% of target 70%",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.h.Namespace, tc.h.Name = "prod", "api"
			got, _ := hpaHeadline(&tc.h)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestHPAMetricKinds(t *testing.T) {
	h := maxedHPA("api", "Deployment", "api")
	h.Spec.Metrics = append(h.Spec.Metrics,
		autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "http_requests_per_second"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr(resourceQty("100"))},
		}},
		autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "queue_depth"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: ptr(resourceQty("30"))},
		}},
	)
	// The status lists metrics in its own order.
	h.Status.CurrentMetrics = append([]autoscalingv2.MetricStatus{
		{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{
			Metric: autoscalingv2.MetricIdentifier{Name: "queue_depth"}, Current: autoscalingv2.MetricValueStatus{Value: ptr(resourceQty("120"))},
		}},
	}, h.Status.CurrentMetrics...)
	st := &gather{g: &Gatherer{red: newTestStage(t, testConfig()).red}, res: &Result{Counts: map[string]int{}}}
	assert.Equal(t, []envelope.HPAMetricEvidence{
		{Name: "cpu", Current: "182%", Target: "70%"},
		{Name: "http_requests_per_second", Target: "100 average"},
		{Name: "queue_depth", Current: "120", Target: "30"},
	}, st.hpaMetrics(h))
}

func TestForbiddenPVCAccessNamesTheMissingRule(t *testing.T) {
	for _, tc := range []struct {
		verb, resource, want string
		headline             string
	}{
		{
			"get", "persistentvolumeclaims",
			`forbidden: cannot get persistentvolumeclaims in namespace prod; missing RBAC rule {apiGroups: [""], resources: [persistentvolumeclaims], verbs: [get]}`,
			"PVC prod/data-postgres-0 (could not be read) is used by pod postgres-0",
		},
		{
			"get", "storageclasses",
			`forbidden: cannot get storageclasses cluster-wide; missing RBAC rule {apiGroups: [storage.k8s.io], resources: [storageclasses], verbs: [get]}`,
			"PVC prod/data-postgres-0 (10Gi, storage class gp3) is used by pod postgres-0",
		},
	} {
		t.Run(tc.resource, func(t *testing.T) {
			sc := scenarioNamed(t, "PVCFillingUp")
			kc := fakeClient(t, runtimeObjects(sc)...)
			kc.PrependReactor(tc.verb, tc.resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: tc.resource}, "", fmt.Errorf("user cannot %s %s", tc.verb, tc.resource))
			})
			s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
			// Two alerts for claims in one namespace: the 403 is recorded once.
			enr, transient := s.Enrich(context.Background(), webhook(sc.labels,
				alertLabels("alertname", "KubePersistentVolumeFillingUp", "persistentvolumeclaim", "data-postgres-1")))
			require.NoError(t, transient, "403 is not worth a retry")
			require.Len(t, filterErrors(enr.Errors, "not found"), 1, "%q", enr.Errors)
			assert.Contains(t, filterErrors(enr.Errors, "not found")[0], tc.want)
			assert.Equal(t, tc.headline, enr.Headline)
			require.NotEmpty(t, enr.Detail.PVCs)
			assert.Equal(t, []string{"postgres-0 (Running)"}, enr.Detail.PVCs[0].UsedBy, "the pods that mount it are found either way")
			assert.Contains(t, enr.Text, "Lookup problems:\n  - "+tc.want)
		})
	}
}

func TestPodsListForbiddenLeavesUsersUnknown(t *testing.T) {
	sc := scenarioNamed(t, "PVCFillingUp")
	kc := fakeClient(t, runtimeObjects(sc)...)
	kc.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", fmt.Errorf("no"))
	})
	s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(sc.labels))
	require.NoError(t, transient)
	assert.Equal(t, "PVC prod/data-postgres-0 (10Gi, storage class gp3, expandable)", enr.Headline, "no claim about who uses it")
	assert.True(t, enr.Detail.PVCs[0].UsersUnknown)
	assert.Contains(t, enr.Text, "Used by: unknown (pods could not be listed)")
}

func TestPVCResizeAndRedaction(t *testing.T) {
	sc := scenarioNamed(t, "PVCFillingUp")
	objs := runtimeObjects(sc)
	for _, o := range objs {
		if c, ok := o.(*corev1.PersistentVolumeClaim); ok {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = resourceQty("20Gi")
			c.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{
				Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue,
				Message: "Waiting for user to (re-)start a pod to finish file system resize of volume on node.",
			}}
			objs = append(objs, event("data-resize", c, "PersistentVolumeClaim", "Warning", "VolumeResizeFailed",
				"resize volume failed: https://admin:s3cr3t-Passw0rd@csi.internal/resize returned 500", 2, -time.Minute))
		}
	}
	s := newTestStage(t, testConfig(), WithClient(fakeClient(t, objs...), &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(sc.labels))
	require.NoError(t, transient)
	assert.Equal(t, "PVC prod/data-postgres-0 (10Gi, 20Gi requested, storage class gp3, expandable) is used by pod postgres-0; "+
		"FileSystemResizePending: Waiting for user to (re-)start a pod to finish file system resize of volume on node.", enr.Headline)
	assert.Contains(t, enr.KeyEvidence, "VolumeResizeFailed: resize volume failed: https://admin:[REDACTED:url-credentials]@csi.internal/resize returned 500")
	assert.Contains(t, enr.Text, ": Bound, capacity 10Gi, requested 20Gi, storage class gp3 (expandable)")
	assert.NotContains(t, enr.Text, "s3cr3t-Passw0rd")
	assert.Equal(t, 1, enr.Redactions["url-credentials"])
}

func TestPVCGone(t *testing.T) {
	s := newTestStage(t, testConfig(), WithClient(fakeClient(t), &testLogs{}))
	enr, transient := s.Enrich(context.Background(), webhook(alertLabels("alertname", "KubePersistentVolumeFillingUp", "persistentvolumeclaim", "data-old")))
	require.NoError(t, transient)
	assert.Equal(t, "PVC prod/data-old no longer exists", enr.Headline)
	assert.Equal(t, []string{"persistentvolumeclaim prod/data-old not found: it was deleted before we looked"}, enr.Errors)
	assert.Equal(t, 1, enr.Detail.APICalls, "nothing else to look at for a claim that is gone")
}

// TestAPICallsAreBounded measures the API requests per alert kind and
// checks the bounds hold for big groups: many filling claims in one
// namespace, a Pending pod with many claims.
func TestAPICallsAreBounded(t *testing.T) {
	t.Run("per scenario", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			max  int
		}{
			// GET pvc, events, GET storageclass, LIST pods; the user pod
			// in detail (GET statefulset, its events, pod events, log),
			// its node.
			{"PVCFillingUp", 9},
			// GET pvc, events, GET storageclass, LIST pods.
			{"PVCPendingProvisioningFailed", 4},
			// GET pod, events; GET each claim (2), events of the unbound one.
			{"PodPendingUnboundPVC", 5},
			// GET hpa, events; the Deployment (GET, LIST replicasets,
			// events), its pods (LIST) and one in detail (events, log),
			// its node.
			{"HPAMaxedOut", 9},
		} {
			sc := scenarioNamed(t, tc.name)
			kc := fakeClient(t, runtimeObjects(sc)...)
			s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{logs: sc.logs}))
			var mu sync.Mutex
			used := map[need]bool{}
			s.gather.used = func(n need) { mu.Lock(); used[n] = true; mu.Unlock() }
			enr, transient := s.Enrich(context.Background(), webhook(sc.labels))
			require.NoError(t, transient)
			t.Logf("%s: %d API calls %v", tc.name, enr.Detail.APICalls, countCalls(&kc.Fake))
			assert.Equal(t, tc.max, enr.Detail.APICalls, tc.name)
			assertPermissionsDeclared(t, used)
		}
	})

	t.Run("a group of 25 filling claims", func(t *testing.T) {
		objs := []runtime.Object{storageClass("gp3", true), node("node-1", corev1.ConditionTrue, "KubeletReady", "")}
		var labels []map[string]string
		for i := range 25 {
			name := fmt.Sprintf("data-kafka-%d", i)
			objs = append(objs, claim(name, "gp3", "100Gi", corev1.ClaimBound))
			p := pod(fmt.Sprintf("kafka-%d", i), nil, nil, container("kafka", "apache/kafka:4.1", "4Gi"), "node-1", corev1.PodRunning,
				&corev1.ContainerStatus{Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(-time.Hour)}}})
			mountClaim(p, "data", name)
			objs = append(objs, p)
			labels = append(labels, alertLabels("alertname", "KubePersistentVolumeFillingUp", "persistentvolumeclaim", name))
		}
		kc := fakeClient(t, objs...)
		s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
		enr, transient := s.Enrich(context.Background(), webhook(labels...))
		require.NoError(t, transient)
		calls := countCalls(&kc.Fake)
		t.Logf("25 claims: %d API calls %v", enr.Detail.APICalls, calls)
		assert.Len(t, enr.Detail.PVCs, maxTargetPVCs)
		assert.Len(t, enr.Detail.MorePVCs, 25-maxTargetPVCs)
		assert.Contains(t, enr.Text, "PVCs not looked at (limit 10): prod/data-kafka-10, ")
		assert.Equal(t, 1, calls["list persistentvolumeclaims"], "one LIST, not a GET per claim")
		assert.Zero(t, calls["get persistentvolumeclaims"])
		assert.Equal(t, 1, calls["get storageclasses"], "one class, looked up once")
		assert.Equal(t, 1, calls["list pods"], "the namespace's pods are listed once for all claims")
		assert.Len(t, enr.Detail.Pods, testConfig().PodsInDetail, "at most pods_in_detail pods in detail over all claims")
		assert.LessOrEqual(t, enr.Detail.APICalls, 30)
	})

	t.Run("a Pending pod with five claims", func(t *testing.T) {
		p := pod("batch-0", nil, nil, container("batch", "acme/batch:1", "1Gi"), "", corev1.PodPending, nil)
		objs := []runtime.Object{p}
		for i := range 5 {
			name := fmt.Sprintf("vol-%d", i)
			mountClaim(p, name, name)
			objs = append(objs, claim(name, "fast", "1Gi", corev1.ClaimPending))
		}
		kc := fakeClient(t, objs...)
		s := newTestStage(t, testConfig(), WithClient(kc, &testLogs{}))
		enr, transient := s.Enrich(context.Background(), webhook(alertLabels("alertname", "KubePodNotReady", "pod", "batch-0")))
		require.NoError(t, transient)
		calls := countCalls(&kc.Fake)
		t.Logf("pending pod with 5 claims: %d API calls %v", enr.Detail.APICalls, calls)
		assert.Equal(t, maxPodClaims, calls["get persistentvolumeclaims"])
		assert.Len(t, enr.Detail.PVCs, maxPodClaims)
		assert.Equal(t, "PVC prod/vol-0 used by pod batch-0 is Pending", enr.Headline, "without a scheduling condition the claim explains the wait")
	})
}

func TestSkipNodesSkipsStorageClasses(t *testing.T) {
	sc := scenarioNamed(t, "PVCFillingUp")
	kc := fakeClient(t, runtimeObjects(sc)...)
	cfg := testConfig()
	cfg.SkipNodes = true
	s := newTestStage(t, cfg, WithClient(kc, &testLogs{}))
	enr, err := s.Enrich(context.Background(), webhook(sc.labels))
	require.NoError(t, err)
	assert.Empty(t, enr.Errors, "namespaced RBAC cannot grant storage classes: no lookup, no 403")
	assert.Nil(t, enr.Detail.PVCs[0].Expandable)
	for _, a := range kc.Actions() {
		assert.NotEqual(t, "storageclasses", a.GetResource().Resource)
	}
	assert.True(t, strings.HasPrefix(enr.Headline, "PVC prod/data-postgres-0 (10Gi, storage class gp3) is used by pod postgres-0"), enr.Headline)
}

func resourceQty(s string) resource.Quantity { return resource.MustParse(s) }
