package enricher

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// benchEnrich measures Enrich and reports API calls and evidence bytes per
// notification.
func benchEnrich(b *testing.B, s *Stage, w *envelope.Webhook) {
	b.Helper()
	var enr *envelope.Enrichment
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var err error
		enr, err = s.Enrich(context.Background(), w)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(enr.Detail.APICalls), "apicalls/op")
	b.ReportMetric(float64(enr.Detail.Bytes), "evidence-bytes/op")
}

func BenchmarkEnrichFakeCrashLoop(b *testing.B) {
	sc := scenarios()[0]
	s := newTestStage(b, testConfig(), WithClient(fakeClient(b, runtimeObjects(sc)...), &testLogs{logs: sc.logs}))
	benchEnrich(b, s, webhook(sc.labels))
}

func BenchmarkEnrichFake50PodGroup(b *testing.B) {
	objs, labels := largeGroup(50)
	s := newTestStage(b, testConfig(), WithClient(fakeClient(b, objs...), &testLogs{}))
	benchEnrich(b, s, webhook(labels...))
}

// realServer starts envtest and loads objects as the documented
// ServiceAccount would see them.
func realServer(b *testing.B, objs []client.Object) kubernetes.Interface {
	b.Helper()
	admin := startAPIServer(b)
	akc, err := kubernetes.NewForConfig(admin)
	require.NoError(b, err)
	l := &loader{kc: akc, uids: map[types.UID]types.UID{}}
	l.namespace(context.Background(), b, ns)
	l.load(context.Background(), b, ns, objs)
	return serviceAccountClient(context.Background(), b, admin, akc, "enricher", rbacFile(b))
}

func BenchmarkEnrichRealAPIServerCrashLoop(b *testing.B) {
	sc := scenarios()[0]
	kc := realServer(b, sc.objs)
	s := newTestStage(b, testConfig(), WithClient(kc, &testLogs{logs: sc.logs}))
	benchEnrich(b, s, webhook(sc.labels))
}

func BenchmarkEnrichRealAPIServer50PodGroup(b *testing.B) {
	objs, labels := largeGroup(50)
	cobjs := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		cobjs = append(cobjs, o.(client.Object))
	}
	kc := realServer(b, cobjs)
	s := newTestStage(b, testConfig(), WithClient(kc, &testLogs{}))
	benchEnrich(b, s, webhook(labels...))
}
