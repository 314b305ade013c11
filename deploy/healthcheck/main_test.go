package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.Error(w, "nats: not connected", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)

	var stderr bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{srv.URL + "/readyz"}, &stderr))
	assert.Equal(t, 1, run(context.Background(), []string{srv.URL + "/other"}, &stderr))
	assert.Contains(t, stderr.String(), "503 Service Unavailable: nats: not connected")
	assert.Equal(t, 1, run(context.Background(), []string{"http://127.0.0.1:1/readyz"}, &stderr))
	assert.Equal(t, 2, run(context.Background(), []string{"a", "b"}, &stderr))
}
