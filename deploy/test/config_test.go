package deploytest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/app"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/enricher"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/ingest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
)

// TestRenderedConfigLoadsInTheBinaries feeds the config file the chart
// renders to the binaries' own strict loaders, so a key the chart writes
// and the code does not know (or a wrong type) fails here, not in a pod.
func TestRenderedConfigLoadsInTheBinaries(t *testing.T) {
	t.Parallel()
	env := config.MapEnv(map[string]string{
		"SMARTMON_INGEST_TOKEN":  "t0ken",
		"SMARTMON_INGEST_LISTEN": "0.0.0.0:9095",
		"SMARTMON_NATS_URL":      "nats://nats:4222",
		"KUBECONFIG":             filepath.Join(t.TempDir(), "none"),
	})
	for name, sets := range valueSets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cms := ofType[*corev1.ConfigMap](render(t, sets))
			require.Len(t, cms, 1)
			path := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(cms[0].Data["config.yaml"]), 0o600))

			_, err := app.Load(path, env)
			require.NoError(t, err, "smartmon run")
			for svc, own := range map[string]service.Configurable{
				"ingest": &ingest.Config{}, "enricher": &enricher.Config{},
				"advisor": &advisor.Config{}, "notifier": &notifier.Config{},
			} {
				_, err := service.Load(path, svc, own, env)
				require.NoError(t, err, svc)
			}
		})
	}
}
