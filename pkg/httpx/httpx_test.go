package httpx_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/httpx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
)

func client(t *testing.T) *httpx.Client {
	t.Helper()
	c, err := httpx.New(httpx.Config{Timeout: 2 * time.Second, MaxWait: 50 * time.Millisecond}, zap.NewNop(), nil)
	require.NoError(t, err)
	return c
}

func TestTransportErrorsNeverContainTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/api/webhooks/1/TOKEN-abc?sig=SIG-xyz"
	srv.Close()
	_, err := client(t).Do(context.Background(), httpx.Endpoint{Name: "chat"}, httpx.Request{Method: http.MethodPost, URL: config.Secret(u)})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "TOKEN-abc")
	assert.NotContains(t, err.Error(), "SIG-xyz")
	assert.Contains(t, err.Error(), "POST chat")
	assert.False(t, retry.IsPermanent(err), "transport errors are transient")
}

func TestStatusClassification(t *testing.T) {
	cases := []struct {
		status    int
		header    map[string]string
		body      string
		permanent bool
		dead      bool
		after     time.Duration
	}{
		{status: 429, body: `{"retry_after":0.347,"global":false}`, header: map[string]string{"Retry-After": "1"}, after: 347 * time.Millisecond},
		{status: 429, header: map[string]string{"Retry-After": "2"}, after: 2 * time.Second},
		{status: 503, header: map[string]string{"Retry-After": "1"}, after: time.Second},
		{status: 502},
		{status: 400, permanent: true},
		{status: 401, permanent: true, dead: true},
		{status: 403, permanent: true, dead: true},
		{status: 404, permanent: true, dead: true},
		{status: 410, permanent: true, dead: true},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls.Add(1)
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := client(t)
			ep := httpx.Endpoint{Name: "hook"}
			req := httpx.Request{Method: http.MethodPost, URL: config.Secret(srv.URL + "/secret-path")}
			_, err := c.Do(context.Background(), ep, req)
			require.Error(t, err)
			assert.Equal(t, tc.permanent, retry.IsPermanent(err))
			assert.NotContains(t, err.Error(), "secret-path")
			d, ok := retry.RetryAfter(err)
			assert.Equal(t, tc.after != 0, ok)
			assert.Equal(t, tc.after, d)
			_, dead := c.Dead("hook")
			assert.Equal(t, tc.dead, dead)
			// A second call: dead endpoints and blocked ones send nothing.
			_, err = c.Do(context.Background(), ep, req)
			require.Error(t, err)
			switch {
			case tc.dead:
				require.ErrorIs(t, err, httpx.ErrDead)
				assert.Equal(t, int32(1), calls.Load())
			case tc.after > 50*time.Millisecond:
				require.ErrorIs(t, err, httpx.ErrThrottled)
				assert.Equal(t, int32(1), calls.Load())
			}
		})
	}
}

func TestPassReturnsOnlyTheAnswersTheCallerClaims(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		if calls.Add(1) == 1 {
			_, _ = w.Write([]byte("mine"))
			return
		}
		_, _ = w.Write([]byte("gone"))
	}))
	defer srv.Close()
	c := client(t)
	ep := httpx.Endpoint{Name: "hook"}
	mine := func(status int, body []byte) bool { return status == http.StatusNotFound && string(body) == "mine" }
	req := httpx.Request{Method: http.MethodPatch, URL: config.Secret(srv.URL + "/secret-path"), Pass: mine}
	resp, err := c.Do(context.Background(), ep, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, resp.Status)
	_, dead := c.Dead("hook")
	assert.False(t, dead, "a passed answer is the caller's, not a dead webhook")

	_, err = c.Do(context.Background(), ep, req)
	require.ErrorIs(t, err, httpx.ErrDead, "a 404 the caller does not claim is classified as usual")
	assert.True(t, retry.IsPermanent(err))
	_, dead = c.Dead("hook")
	assert.True(t, dead)
}

func TestDiscordGlobalLimitPausesTheWholeGroup(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"retry_after":5,"global":true}`))
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c := client(t)
	_, err := c.Do(context.Background(), httpx.Endpoint{Name: "a", Group: "discord"}, httpx.Request{Method: http.MethodPost, URL: config.Secret(srv.URL + "/a")})
	require.Error(t, err)
	_, err = c.Do(context.Background(), httpx.Endpoint{Name: "b", Group: "discord"}, httpx.Request{Method: http.MethodPost, URL: config.Secret(srv.URL + "/b")})
	require.ErrorIs(t, err, httpx.ErrThrottled)
	_, err = c.Do(context.Background(), httpx.Endpoint{Name: "c", Group: "slack"}, httpx.Request{Method: http.MethodPost, URL: config.Secret(srv.URL + "/c")})
	require.NoError(t, err)
	assert.Equal(t, int32(2), calls.Load())
}

func TestScrubRemovesEveryFormOfTheURL(t *testing.T) {
	u := config.Secret("https://hooks.example/services/T0/B0/SECRET?x=1")
	in := "post https://hooks.example/services/T0/B0/SECRET?x=1 failed; path /services/T0/B0/SECRET"
	out := httpx.Scrub(in, u)
	assert.NotContains(t, out, "SECRET")
	assert.Contains(t, out, "[webhook URL]")
}

// TestOneRequestInFlightPerWebhook: two posts race to one webhook; the
// first earns a 429 with retry_after. The second must not leave before
// that time: it waits for the first answer instead of overlapping it.
func TestOneRequestInFlightPerWebhook(t *testing.T) {
	var (
		mu       sync.Mutex
		inflight int
		overlap  bool
		blocked  time.Time
		early    bool
		calls    int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		inflight++
		overlap = overlap || inflight > 1
		calls++
		first := calls == 1
		early = early || (!first && time.Now().Before(blocked))
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // a slow platform answer, so overlap would show
		mu.Lock()
		inflight--
		if first {
			blocked = time.Now().Add(300 * time.Millisecond)
		}
		mu.Unlock()
		if first {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"retry_after":0.3,"global":false}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := httpx.New(httpx.Config{Timeout: 2 * time.Second, MaxWait: time.Second}, zap.NewNop(), nil)
	require.NoError(t, err)
	ep := httpx.Endpoint{Name: "discord", Group: "discord"}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			_, errs[i] = c.Do(context.Background(), ep, httpx.Request{Method: http.MethodPost, URL: config.Secret(srv.URL)})
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	assert.False(t, overlap, "two requests to one webhook were in flight at once")
	assert.False(t, early, "a request left before the retry_after of the 429")
	assert.Equal(t, 2, calls)
	n429 := 0
	for _, err := range errs {
		if err != nil {
			n429++
		}
	}
	assert.Equal(t, 1, n429, "only the first request was answered 429")
}
