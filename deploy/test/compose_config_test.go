package deploytest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/service"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/enricher"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/ingest"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier"
)

// TestComposeServicesStartWithTheirSettings gives each service the
// environment and config file compose would give it (from .env.example)
// and runs the binary's own loader and validation: a variable the code
// does not read the way compose sets it, or an ingest listening without a
// token, fails here rather than in `docker compose up`.
func TestComposeServicesStartWithTheirSettings(t *testing.T) {
	t.Parallel()
	p, err := loadCompose(t, exampleEnv(t))
	require.NoError(t, err)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(p.Configs["smartmon_config"].Content), 0o600))

	for name, own := range map[string]service.Configurable{
		"ingest": &ingest.Config{}, "enricher": &enricher.Config{},
		"advisor": &advisor.Config{}, "notifier": &notifier.Config{},
	} {
		t.Run(name, func(t *testing.T) {
			svc, ok := p.Services[name]
			require.True(t, ok)
			env := map[string]string{}
			for k, v := range svc.Environment {
				if v != nil {
					env[k] = *v
				}
			}
			_, err := service.Load(cfgFile, name, own, config.MapEnv(env))
			require.NoError(t, err)
		})
	}
}
