package retry

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoffDelayIsCappedExponential(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, NoJitter: true}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		assert.Equal(t, w*time.Millisecond, b.Delay(i+1), "attempt %d", i+1)
	}
}

func TestBackoffJitterStaysInUpperHalf(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: time.Second}
	for range 100 {
		d := b.Delay(1)
		require.GreaterOrEqual(t, d, 500*time.Millisecond)
		require.LessOrEqual(t, d, time.Second)
	}
}

func TestDecideReadsErrorTypes(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: time.Minute, NoJitter: true}
	base := errors.New("boom")

	_, ok := b.Decide(fmt.Errorf("post: %w", Permanent(base)), 1)
	assert.False(t, ok, "permanent errors are not retried")

	d, ok := b.Decide(fmt.Errorf("post: %w", After(1500*time.Millisecond, base)), 3)
	assert.True(t, ok)
	assert.Equal(t, 1500*time.Millisecond, d, "Retry-After wins over backoff")

	d, ok = b.Decide(base, 2)
	assert.True(t, ok)
	assert.Equal(t, 2*time.Second, d)

	assert.NoError(t, Permanent(nil))
	assert.NoError(t, After(time.Second, nil))
	assert.ErrorIs(t, Permanent(base), base)
}
