package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeRejectsUnknownKeys(t *testing.T) {
	var c struct {
		Listen string `yaml:"listen"`
	}
	err := Decode([]byte("listen: x\nlisten_addr: y\n"), &c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen_addr")
	require.NoError(t, Decode([]byte(""), &c))
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	assert.Equal(t, "[REDACTED]", s.String())
	b, err := s.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "[REDACTED]", string(b))
	assert.Equal(t, "hunter2", s.Reveal())
}

func TestEnvSecretOrder(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tok")
	require.NoError(t, os.WriteFile(f, []byte("from-file\n"), 0o600))

	var s Secret
	require.NoError(t, MapEnv(map[string]string{"K": "from-env", "K_FILE": f}).Secret("K", &s, nil))
	assert.Equal(t, "from-env", s.Reveal())

	s = ""
	require.NoError(t, MapEnv(map[string]string{"K_FILE": f}).Secret("K", &s, nil))
	assert.Equal(t, "from-file", s.Reveal(), "trailing newline trimmed")

	s = ""
	cfgFile := f
	require.NoError(t, MapEnv(nil).Secret("K", &s, &cfgFile))
	assert.Equal(t, "from-file", s.Reveal())

	err := MapEnv(map[string]string{"K_FILE": filepath.Join(dir, "missing")}).Secret("K", &s, nil)
	require.Error(t, err)
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"4MiB": 4 << 20, "512KiB": 512 << 10, "1GB": 1e9, "100": 100, "2 MB": 2e6} {
		got, err := ParseByteSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "MiB", "4XB", "-1"} {
		_, err := ParseByteSize(in)
		assert.Error(t, err, in)
	}
}

func TestDecodeSections(t *testing.T) {
	var ingest struct {
		Listen string `yaml:"listen"`
	}
	var dataDir string
	doc := []byte("data_dir: /x\ningest:\n  listen: :1\nadvisor:\n  whatever: 1\n")
	require.NoError(t, DecodeSections(doc, map[string]any{"ingest": &ingest, "data_dir": &dataDir}))
	assert.Equal(t, ":1", ingest.Listen)
	assert.Equal(t, "/x", dataDir)

	err := DecodeSections([]byte("ingest:\n  listn: :1\n"), map[string]any{"ingest": &ingest})
	require.ErrorContains(t, err, "listn")
	err = DecodeSections([]byte("ingset: {}\n"), map[string]any{"ingest": &ingest})
	require.ErrorContains(t, err, "unknown top-level keys ingset")
}
