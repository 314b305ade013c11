package deploytest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// repoRoot is where the deploy files live relative to this package.
const repoRoot = "../.."

func chartDir() string { return filepath.Join(repoRoot, "deploy", "helm", "smart-k8s-monitor") }

// helmBinary finds the pinned helm. Under CI a missing binary is a failure:
// a skipped chart test must not look like a passing one.
func helmBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SMARTMON_HELM")
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	msg := "helm not found: set SMARTMON_HELM to the pinned binary (make deploy-tools installs it into ./bin; make deploy-test sets it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// helm runs the helm binary and returns stdout, stderr and the error.
func helm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := helmBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// Keep helm away from the user's kube and helm config.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// setArgs turns a list of key=value pairs into --set flags.
func setArgs(sets []string) []string {
	args := make([]string, 0, 2*len(sets))
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}
