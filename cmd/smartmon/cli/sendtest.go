package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/version"
)

func sendTestAlertCmd(ctx context.Context, args []string, sio IO) error {
	fs := flag.NewFlagSet("send-test-alert", flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	url := fs.String("url", envOr("SMARTMON_INGEST_URL", "http://127.0.0.1:9095/api/v1/alerts"), "ingest webhook URL (env SMARTMON_INGEST_URL)")
	resolved := fs.Bool("resolved", false, "send the resolved notification instead of the firing one")
	startsAt := fs.String("starts-at", "", "the alert's startsAt (RFC 3339); default: now, rounded down to 10 minutes, so a firing and a later --resolved belong together")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w", errUsage)
	}
	start := time.Now().UTC().Truncate(10 * time.Minute)
	if *startsAt != "" {
		t, err := time.Parse(time.RFC3339, *startsAt)
		if err != nil {
			return usageErr("--starts-at: %v", err)
		}
		start = t
	}
	body, err := json.Marshal(envelope.SampleCrashLoop(start, *resolved))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
	if err != nil {
		return usageErr("--url: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Alertmanager/0.31.1 (smartmon send-test-alert "+version.Version+")")
	if tok := envOr("SMARTMON_INGEST_TOKEN", ""); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %w (is `smartmon run` running?)", *url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ingest answered %s: %s", resp.Status, bytes.TrimSpace(out))
	}
	var a struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	_ = json.Unmarshal(out, &a)
	state := "firing"
	if *resolved {
		state = "resolved"
	}
	switch a.Status {
	case "duplicate":
		_, err = fmt.Fprintf(sio.Out, "ingest already had this %s notification (id %s): dropped as a duplicate, as an Alertmanager re-send would be.\nSend a new one with --starts-at %s\n",
			state, a.ID, time.Now().UTC().Format(time.RFC3339))
	default:
		_, err = fmt.Fprintf(sio.Out, "sent a %s KubePodCrashLooping notification: id %s\nfollow it with: smartmon trace %s\n", state, a.ID, a.ID)
	}
	return err
}
