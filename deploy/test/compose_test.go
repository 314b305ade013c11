package deploytest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(repoRoot, "deploy"))
	require.NoError(t, err)
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("smart-k8s-monitor", true)
		o.ResolvePaths = true
	})
}

// exampleEnv is deploy/.env.example, as `docker compose` would read deploy/.env.
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{filepath.Join(repoRoot, "deploy", ".env.example")})
	require.NoError(t, err)
	return env
}

func TestComposeLoads(t *testing.T) {
	t.Parallel()
	p, err := loadCompose(t, exampleEnv(t))
	require.NoError(t, err)

	want := []string{"nats", "ollama", "ollama-pull", "ingest", "enricher", "advisor", "notifier"}
	assert.ElementsMatch(t, want, p.ServiceNames())

	for name, svc := range p.Services {
		require.NotNil(t, svc.HealthCheck, "service %s has no healthcheck", name)
		assert.False(t, svc.HealthCheck.Disable, "service %s disables its healthcheck", name)
		assert.NotEmpty(t, svc.HealthCheck.Test, "service %s: empty healthcheck test", name)
		assert.Equal(t, "CMD", svc.HealthCheck.Test[0], "service %s: healthcheck must exec a binary (distroless images have no shell)", name)
	}

	// Who waits for whom, and for what.
	deps := map[string]map[string]string{
		"ollama-pull": {"ollama": types.ServiceConditionHealthy},
		"ingest":      {"nats": types.ServiceConditionHealthy},
		"enricher":    {"nats": types.ServiceConditionHealthy, "ingest": types.ServiceConditionStarted},
		// The advisor must not wait for the model: alerts flow without it.
		"advisor":  {"nats": types.ServiceConditionHealthy, "ingest": types.ServiceConditionStarted, "ollama": types.ServiceConditionStarted},
		"notifier": {"nats": types.ServiceConditionHealthy, "ingest": types.ServiceConditionStarted},
	}
	for name, svc := range p.Services {
		got := map[string]string{}
		for dep, d := range svc.DependsOn {
			got[dep] = d.Condition
		}
		want := deps[name]
		if want == nil {
			want = map[string]string{}
		}
		assert.Equal(t, want, got, "depends_on of %s", name)
	}

	// Stages: the shared image, read-only, no capabilities, the shared config.
	for _, name := range []string{"ingest", "enricher", "advisor", "notifier"} {
		svc := p.Services[name]
		assert.True(t, svc.ReadOnly, "%s read_only", name)
		assert.Equal(t, []string{"ALL"}, svc.CapDrop, "%s cap_drop", name)
		require.NotNil(t, svc.Build, "%s builds the image", name)
		assert.Equal(t, "smartmon", svc.Build.Target)
		assert.Equal(t, "nats://nats:4222", *svc.Environment["SMARTMON_NATS_URL"], name)
		assert.Equal(t, "change-me-too", *svc.Environment["SMARTMON_NATS_PASSWORD"], "%s gets the NATS password from .env", name)
		require.Len(t, svc.Configs, 1)
		assert.Equal(t, "/etc/smartmon/config.yaml", svc.Configs[0].Target)
		assert.Equal(t, "/usr/local/bin/"+name, svc.Entrypoint[0])
	}
	assert.Equal(t, "change-me-to-a-long-random-token", *p.Services["ingest"].Environment["SMARTMON_INGEST_TOKEN"])
	assert.Nil(t, p.Services["enricher"].Environment["SMARTMON_INGEST_TOKEN"], "only ingest gets the ingest token")
	assert.Nil(t, p.Services["advisor"].Environment["SMARTMON_DISCORD_WEBHOOK_URL"], "only the notifier gets webhook URLs")

	// Data survives restarts.
	assert.Contains(t, p.Volumes, "nats-data")
	assert.Contains(t, p.Volumes, "ollama-data")
	// NATS runs JetStream with the password from its environment, never inline.
	natsConf := string(p.Configs["nats_config"].Content)
	assert.Contains(t, natsConf, "jetstream")
	assert.Contains(t, natsConf, "$SMARTMON_NATS_PASSWORD")
	assert.NotContains(t, natsConf, "change-me-too")
	assert.Equal(t, []string{"pull", "mistral"}, []string(p.Services["ollama-pull"].Command))
}

func TestComposeRequiresSecrets(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"SMARTMON_INGEST_TOKEN", "SMARTMON_NATS_PASSWORD"} {
		env := exampleEnv(t)
		delete(env, key)
		_, err := loadCompose(t, env)
		require.Error(t, err, "compose must refuse to start without %s", key)
		assert.Contains(t, err.Error(), key)
	}
}

func TestEnvExampleHasNoRealSecrets(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", ".env.example"))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "WEBHOOK_URL=") && !strings.HasPrefix(line, "#") {
			assert.True(t, strings.HasSuffix(line, "="), "example webhook URLs stay empty: %q", line)
		}
	}
}
