// Command healthcheck is the container healthcheck of the smartmon images.
// The images are distroless (no shell, curl or wget), so Docker and compose
// healthchecks run this static binary instead: it GETs one URL on loopback
// and exits 0 on a 2xx answer, 1 otherwise.
//
//	healthcheck                                  # http://127.0.0.1:9095/readyz
//	healthcheck http://127.0.0.1:9096/readyz
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// defaultURL is ingest's (and `smartmon run`'s) readiness endpoint.
const defaultURL = "http://127.0.0.1:9095/readyz"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	url := defaultURL
	switch len(args) {
	case 0:
	case 1:
		url = args[0]
	default:
		fmt.Fprintln(stderr, "usage: healthcheck [URL]")
		return 2
	}
	if err := check(ctx, url, 3*time.Second); err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	return 0
}

// check GETs url and wants a 2xx within timeout.
func check(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody) //nolint:gosec // the probe URL comes from the container command line
	if err != nil {
		return fmt.Errorf("build request for %s: %w", url, err)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req) //nolint:gosec // the URL is the container's own probe address, from its command line
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("get %s: %s: %s", url, resp.Status, body)
	}
	return nil
}
