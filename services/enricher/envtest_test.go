package enricher

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// startAPIServer runs a real kube-apiserver and etcd (envtest). The
// binaries are built from the Go module proxy by `make
// enricher-envtest-assets` into bin/envtest; KUBEBUILDER_ASSETS points at
// that directory.
func startAPIServer(t testing.TB) *rest.Config {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run `make enricher-envtest-assets` and set KUBEBUILDER_ASSETS=$(pwd)/bin/envtest at the repository root (`make test` does both)")
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 2 * time.Minute, ControlPlaneStopTimeout: time.Minute}
	cfg, err := env.Start()
	require.NoError(t, err, "start kube-apiserver and etcd from %s", assets)
	t.Cleanup(func() { assert.NoError(t, env.Stop()) })
	return cfg
}

// loader creates fixture objects through the API, then sets their status
// through the status subresource, as the kubelet and controllers would.
// Fixture UIDs are replaced by the server's in owner references and events,
// so owner lookups and field selectors run for real.
type loader struct {
	kc   kubernetes.Interface
	uids map[types.UID]types.UID
}

func (l *loader) namespace(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	_, err := l.kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = l.kc.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func (l *loader) load(ctx context.Context, t testing.TB, namespace string, objs []client.Object) {
	t.Helper()
	for _, o := range objs {
		o = o.DeepCopyObject().(client.Object)
		fixtureUID := o.GetUID()
		// Node events stay in "default", as the node controller records them.
		e, isEvent := o.(*corev1.Event)
		if nodeEvent := isEvent && e.InvolvedObject.Kind == "Node"; !nodeEvent && o.GetNamespace() != "" {
			o.SetNamespace(namespace)
		}
		o.SetUID("")
		o.SetCreationTimestamp(metav1.Time{})
		refs := o.GetOwnerReferences()
		for i := range refs {
			refs[i].UID = l.uids[refs[i].UID]
		}
		o.SetOwnerReferences(refs)
		created, err := l.create(ctx, o)
		if apierrors.IsAlreadyExists(err) && o.GetNamespace() == "" {
			continue // a node shared by scenarios
		}
		require.NoError(t, err, "create %T %s", o, o.GetName())
		l.uids[fixtureUID] = created.GetUID()
	}
}

func (l *loader) create(ctx context.Context, o client.Object) (client.Object, error) {
	c := metav1.CreateOptions{}
	u := metav1.UpdateOptions{}
	ns := o.GetNamespace()
	switch v := o.(type) {
	case *corev1.Node:
		st := v.Status
		n, err := l.kc.CoreV1().Nodes().Create(ctx, v, c)
		if err != nil {
			return nil, err
		}
		n.Status = st
		return l.kc.CoreV1().Nodes().UpdateStatus(ctx, n, u)
	case *corev1.Pod:
		st := v.Status
		p, err := l.kc.CoreV1().Pods(ns).Create(ctx, v, c)
		if err != nil {
			return nil, err
		}
		p.Status = st
		return l.kc.CoreV1().Pods(ns).UpdateStatus(ctx, p, u)
	case *corev1.Event:
		if v.InvolvedObject.Kind != "Node" {
			v.InvolvedObject.Namespace = ns
		}
		v.InvolvedObject.UID = l.uids[v.InvolvedObject.UID]
		return l.kc.CoreV1().Events(ns).Create(ctx, v, c)
	case *appsv1.Deployment:
		st := v.Status
		d, err := l.kc.AppsV1().Deployments(ns).Create(ctx, v, c)
		if err != nil {
			return nil, err
		}
		d.Status = st
		return l.kc.AppsV1().Deployments(ns).UpdateStatus(ctx, d, u)
	case *appsv1.ReplicaSet:
		st := v.Status
		r, err := l.kc.AppsV1().ReplicaSets(ns).Create(ctx, v, c)
		if err != nil {
			return nil, err
		}
		r.Status = st
		return l.kc.AppsV1().ReplicaSets(ns).UpdateStatus(ctx, r, u)
	case *appsv1.StatefulSet:
		st := v.Status
		s, err := l.kc.AppsV1().StatefulSets(ns).Create(ctx, v, c)
		if err != nil {
			return nil, err
		}
		s.Status = st
		return l.kc.AppsV1().StatefulSets(ns).UpdateStatus(ctx, s, u)
	case *appsv1.DaemonSet:
		st := v.Status
		d, err := l.kc.AppsV1().DaemonSets(ns).Create(ctx, v, c)
		if err != nil {
			return nil, err
		}
		d.Status = st
		return l.kc.AppsV1().DaemonSets(ns).UpdateStatus(ctx, d, u)
	case *batchv1.Job:
		st := v.Status
		j, err := l.kc.BatchV1().Jobs(ns).Create(ctx, v, c)
		if err != nil {
			return nil, err
		}
		j.Status = st
		return l.kc.BatchV1().Jobs(ns).UpdateStatus(ctx, j, u)
	case *batchv1.CronJob:
		return l.kc.BatchV1().CronJobs(ns).Create(ctx, v, c)
	case *storagev1.StorageClass:
		return l.kc.StorageV1().StorageClasses().Create(ctx, v, c)
	case *corev1.PersistentVolumeClaim:
		// Without a provisioner or PV controller a claim stays as set:
		// a Bound claim's status is written as the controller would.
		st := v.Status
		pvc, err := l.kc.CoreV1().PersistentVolumeClaims(ns).Create(ctx, v, c)
		if err != nil || st.Phase == "" {
			return pvc, err
		}
		pvc.Status = st
		return l.kc.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, pvc, u)
	case *autoscalingv2.HorizontalPodAutoscaler:
		st := v.Status
		h, err := l.kc.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, v, c)
		if err != nil {
			return nil, err
		}
		h.Status = st
		return l.kc.AutoscalingV2().HorizontalPodAutoscalers(ns).UpdateStatus(ctx, h, u)
	}
	return nil, fmt.Errorf("loader: unsupported %T", o)
}

// relabel points a scenario's alert and logs at its own namespace.
func relabel(sc scenario, namespace string) (map[string]string, map[string]string) {
	labels := map[string]string{}
	for k, v := range sc.labels {
		labels[k] = v
	}
	if _, ok := labels["namespace"]; ok {
		labels["namespace"] = namespace
	}
	logs := map[string]string{}
	for k, v := range sc.logs {
		logs[namespace+strings.TrimPrefix(k, ns)] = v
	}
	return labels, logs
}

// TestAgainstRealAPIServer runs the scenarios against a real kube-apiserver
// and etcd, as the documented ServiceAccount, and checks the limits of its
// RBAC rules, a forbidden lookup, a slow API server and a 50-pod group.
func TestAgainstRealAPIServer(t *testing.T) {
	admin := startAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	akc, err := kubernetes.NewForConfig(admin)
	require.NoError(t, err)
	l := &loader{kc: akc, uids: map[types.UID]types.UID{}}

	// The enricher's identity: a ServiceAccount bound to exactly the
	// rules in deploy/helm/smart-k8s-monitor/files/enricher-rbac-rules.yaml.
	sa := serviceAccountClient(ctx, t, admin, akc, "enricher", rbacFile(t))

	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			nsName := strings.ToLower(sc.name)
			l.namespace(ctx, t, nsName)
			l.load(ctx, t, nsName, sc.objs)
			labels, logs := relabel(sc, nsName)
			s := newTestStage(t, testConfig(), WithClient(sa, &testLogs{logs: logs}))
			start := time.Now()
			enr, transient := s.Enrich(ctx, webhook(labels))
			require.NoError(t, transient)
			t.Logf("%s: %d API calls, %d bytes, %s\nheadline: %s\n%s", sc.name, enr.Detail.APICalls, enr.Detail.Bytes, time.Since(start), enr.Headline, enr.Text)
			assert.Empty(t, filterErrors(enr.Errors, "not found"), "the documented rules must be enough")
			sc.check(t, enr, true)
		})
	}

	t.Run("ServiceAccountCannotReadSecrets", func(t *testing.T) {
		_, err := akc.CoreV1().Secrets("crashloopbackoff").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "db-creds"}, StringData: map[string]string{"password": "hunter2"},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = sa.CoreV1().Secrets("crashloopbackoff").Get(ctx, "db-creds", metav1.GetOptions{})
		assert.True(t, apierrors.IsForbidden(err), "get secret: %v", err)
		_, err = sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		assert.True(t, apierrors.IsForbidden(err), "list secrets: %v", err)
		_, err = sa.CoreV1().Pods("crashloopbackoff").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, metav1.CreateOptions{})
		assert.True(t, apierrors.IsForbidden(err), "the rules are read-only: %v", err)
	})

	t.Run("Forbidden", func(t *testing.T) {
		var rules []rbacv1.PolicyRule
		for _, r := range rbacFile(t) {
			if len(r.Resources) == 1 && r.Resources[0] == "events" {
				continue
			}
			rules = append(rules, r)
		}
		noEvents := serviceAccountClient(ctx, t, admin, akc, "no-events", rules)
		sc := scenarios()[0]
		labels, logs := relabel(sc, "crashloopbackoff")
		s := newTestStage(t, testConfig(), WithClient(noEvents, &testLogs{logs: logs}))
		enr, transient := s.Enrich(ctx, webhook(labels))
		require.NoError(t, transient)
		require.Len(t, enr.Errors, 1, "%q", enr.Errors)
		assert.Contains(t, enr.Errors[0], `cannot list events in namespace crashloopbackoff; missing RBAC rule {apiGroups: [""], resources: [events], verbs: [list]}`)
		assert.Contains(t, enr.Headline, "restarted 4 times")
	})

	t.Run("SlowAPI", func(t *testing.T) {
		slow := rest.CopyConfig(admin)
		slow.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripper(func(r *http.Request) (*http.Response, error) {
				if strings.Contains(r.URL.Path, "/nodes/") {
					<-r.Context().Done() // an API server that does not answer in time
					return nil, r.Context().Err()
				}
				return rt.RoundTrip(r)
			})
		}
		kc, err := kubernetes.NewForConfig(slow)
		require.NoError(t, err)
		cfg := testConfig()
		cfg.CallTimeout = 200 * time.Millisecond
		sc := scenarios()[0]
		labels, logs := relabel(sc, "crashloopbackoff")
		s := newTestStage(t, cfg, WithClient(kc, &testLogs{logs: logs}))
		start := time.Now()
		enr, transient := s.Enrich(ctx, webhook(labels))
		require.Error(t, transient)
		assert.Less(t, time.Since(start), 5*time.Second)
		assert.True(t, enr.Partial)
		assert.Contains(t, enr.Headline, "restarted 4 times", "the pod evidence is there")
	})

	t.Run("FiftyPodGroup", func(t *testing.T) {
		objs, labels := largeGroup(50)
		l.namespace(ctx, t, "group")
		cobjs := make([]client.Object, 0, len(objs))
		for _, o := range objs {
			cobjs = append(cobjs, o.(client.Object))
		}
		l.load(ctx, t, "group", cobjs)
		for _, lb := range labels {
			lb["namespace"] = "group"
		}
		s := newTestStage(t, testConfig(), WithClient(sa, &testLogs{}))
		const runs = 10
		var total time.Duration
		var calls, bytes int
		for range runs {
			start := time.Now()
			enr, transient := s.Enrich(ctx, webhook(labels...))
			total += time.Since(start)
			require.NoError(t, transient)
			require.Len(t, enr.Detail.Workloads, 1)
			assert.Equal(t, 50, enr.Detail.Workloads[0].Pods)
			calls, bytes = enr.Detail.APICalls, enr.Detail.Bytes
		}
		assert.LessOrEqual(t, calls, 20)
		t.Logf("real API server, 50-pod group: %d API calls, %d bytes, %s per notification (mean of %d)", calls, bytes, total/runs, runs)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func filterErrors(errs []string, except string) []string {
	var out []string
	for _, e := range errs {
		if !strings.Contains(e, except) {
			out = append(out, e)
		}
	}
	return out
}

// serviceAccountClient creates a ServiceAccount bound to rules by a
// ClusterRole and ClusterRoleBinding, and returns a client that
// authenticates with a token issued for it, as a pod would.
func serviceAccountClient(ctx context.Context, t testing.TB, admin *rest.Config, akc kubernetes.Interface, name string, rules []rbacv1.PolicyRule) kubernetes.Interface {
	t.Helper()
	const saNS = "smartmon"
	if _, err := akc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: saNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	_, err := akc.CoreV1().ServiceAccounts(saNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	role := "smartmon-" + name
	_, err = akc.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role}, Rules: rules}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = akc.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: saNS}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	tok, err := akc.CoreV1().ServiceAccounts(saNS).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg := &rest.Config{Host: admin.Host, BearerToken: tok.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData}, QPS: 1000, Burst: 1000}
	kc, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	// RBAC is evaluated on each request; wait until the binding is seen.
	require.Eventually(t, func() bool {
		_, err := kc.CoreV1().Nodes().Get(ctx, "nonexistent", metav1.GetOptions{})
		return apierrors.IsNotFound(err) || len(rules) == 0
	}, 10*time.Second, 50*time.Millisecond)
	return kc
}
