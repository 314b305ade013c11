package jsx_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
)

func TestConfigFromEnvironment(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret\n"), 0o600))
	var c jsx.Config
	c.Defaults()
	require.NoError(t, c.ApplyEnv(config.MapEnv(map[string]string{
		"SMARTMON_NATS_URL":           "nats://a:4222, nats://b:4222 ,nats://c:4222",
		"SMARTMON_NATS_USER":          "smartmon",
		"SMARTMON_NATS_PASSWORD_FILE": pw,
	})))
	assert.Equal(t, []string{"nats://a:4222", "nats://b:4222", "nats://c:4222"}, c.URLs)
	assert.Equal(t, "s3cret", c.Password.Reveal())
	require.NoError(t, c.Validate())
}

func TestConfigValidate(t *testing.T) {
	cases := map[string]func(*jsx.Config){
		"replicas":         func(c *jsx.Config) { c.Replicas = 7 },
		"two auth methods": func(c *jsx.Config) { c.User, c.Password, c.CredsFile = "u", "p", "/x.creds" },
		"cert without key": func(c *jsx.Config) { c.TLS.CertFile = "/c.pem" },
		"window > max age": func(c *jsx.Config) { c.DuplicateWindow = 30 * 24 * time.Hour },
		"tiny store":       func(c *jsx.Config) { c.MaxBytes = 10 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			var c jsx.Config
			c.Defaults()
			mutate(&c)
			assert.Error(t, c.Validate())
		})
	}
}

func TestConnectWithCredentials(t *testing.T) {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Users: []*server.User{{Username: "smartmon", Password: "right-password"}},
	})
	require.NoError(t, err)
	s.Start()
	t.Cleanup(s.Shutdown)
	require.True(t, s.ReadyForConnections(10*time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := jsx.Config{URLs: []string{s.ClientURL()}, User: "smartmon", Password: "right-password"}
	nc, err := jsx.Connect(ctx, c, "test", zap.NewNop())
	require.NoError(t, err)
	nc.Close()

	c.Password = "wrong-password"
	_, err = jsx.Connect(ctx, c, "test", zap.NewNop())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "wrong-password", "credentials never appear in errors")
}

func TestEmbeddedSaysWhenItsPortIsTaken(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	_, err = jsx.StartEmbedded(jsx.EmbeddedConfig{StoreDir: t.TempDir(), Listen: ln.Addr().String()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--nats-listen")
}
