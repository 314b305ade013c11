package jsx_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx/jsxtest"
)

func TestSetupStreamsIsIdempotentAndAppliesChanges(t *testing.T) {
	e := jsxtest.Start(t)
	ctx := context.Background()
	require.NoError(t, jsx.SetupStreams(ctx, e.JS, e.Config), "second call with the same config")

	changed := e.Config
	changed.MaxAge = 48 * time.Hour
	changed.DuplicateWindow = 10 * time.Minute
	require.NoError(t, jsx.SetupStreams(ctx, e.JS, changed))
	s, err := e.JS.Stream(ctx, jsx.StreamAlerts)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	assert.Equal(t, 48*time.Hour, cfg.MaxAge)
	assert.Equal(t, 10*time.Minute, cfg.Duplicates)
}
