package amcheck_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/amcheck"
)

// kpsDefault is kube-prometheus-stack's default alertmanager.yml (chart
// values alertmanager.config): everything goes to a "null" receiver.
const kpsDefault = `
global:
  resolve_timeout: 5m
inhibit_rules:
  - source_matchers: ['severity = critical']
    target_matchers: ['severity =~ warning|info']
    equal: [namespace, alertname]
  - source_matchers: ['severity = warning']
    target_matchers: ['severity = info']
    equal: [namespace, alertname]
  - source_matchers: ['alertname = InfoInhibitor']
    target_matchers: ['severity = info']
    equal: [namespace]
  - target_matchers: ['alertname = InfoInhibitor']
route:
  group_by: ['namespace']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 12h
  receiver: 'null'
  routes:
  - receiver: 'null'
    matchers: ['alertname = "Watchdog"']
receivers:
- name: 'null'
templates:
- '/etc/alertmanager/config/*.tmpl'
`

// kpsWithSmartmon is the default plus what docs/deploy.md tells people to
// add (and what the Operator renders from our AlertmanagerConfig).
const kpsWithSmartmon = `
global:
  resolve_timeout: 5m
route:
  group_by: ['namespace']
  receiver: 'null'
  routes:
  - receiver: 'null'
    matchers: ['alertname = "Watchdog"']
  - receiver: smartmon
    matchers: ['alertname =~ "KubePodCrashLooping|KubePodNotReady|SmartmonPod.*"']
    group_by: ['namespace', 'alertname']
receivers:
- name: 'null'
- name: smartmon
  webhook_configs:
  - url: http://smon-smart-k8s-monitor-ingest.monitoring.svc:9095/api/v1/alerts
    send_resolved: true
    http_config:
      authorization:
        type: Bearer
        credentials_file: /etc/alertmanager/secrets/smartmon-ingest/token
`

func TestRun(t *testing.T) {
	t.Parallel()
	crash := "--alert=alertname=KubePodCrashLooping,namespace=payments,severity=warning"
	tests := []struct {
		name      string
		config    string
		args      []string
		wantCode  int
		wantCodes []string // finding codes that must be reported
		notCodes  []string // finding codes that must not be reported
		wantOut   string   // substring of stdout
		wantErr   string   // substring of stderr
	}{
		{
			name:      "kube-prometheus-stack default sends nothing to us",
			config:    kpsDefault,
			args:      []string{crash},
			wantCode:  amcheck.ExitFindings,
			wantCodes: []string{"no-ingest-receiver", "alert-not-delivered"},
			wantOut:   `does NOT reach ingest: routes route, receivers "null"`,
		},
		{
			name:     "kube-prometheus-stack with the smartmon route",
			config:   kpsWithSmartmon,
			args:     []string{crash, "--alert", "alertname=SmartmonPodOOMKilled,namespace=shop"},
			wantCode: amcheck.ExitOK,
			notCodes: []string{"no-catch-all", "catches-everything", "no-auth", "send-resolved-off"},
			wantOut:  `reaches ingest: routes route.routes[1], receivers "smartmon"`,
		},
		{
			name:     "flags after the file name",
			config:   kpsWithSmartmon,
			args:     []string{"FILE", crash},
			wantCode: amcheck.ExitOK,
			wantOut:  "0 problem(s)",
		},
		{
			name:     "structure only without --alert",
			config:   kpsWithSmartmon,
			wantCode: amcheck.ExitOK,
			wantOut:  "no --alert given",
		},
		{
			name: "missing null receiver",
			config: `
route:
  receiver: 'null'
  routes:
  - receiver: smartmon
    matchers: ['alertname = "KubePodCrashLooping"']
receivers:
- name: smartmon
  webhook_configs:
  - url: http://smartmon:9095/api/v1/alerts
    http_config: {authorization: {credentials: s3cr3t}}
`,
			args:     []string{crash},
			wantCode: amcheck.ExitUsage,
			wantErr:  `add "- name: 'null'" under receivers`,
		},
		{
			name: "root receiver is ours: no catch-all",
			config: `
route:
  receiver: smartmon
receivers:
- name: smartmon
  webhook_configs:
  - url: http://smartmon:9095/api/v1/alerts
    http_config: {authorization: {credentials: s3cr3t}}
`,
			args:      []string{crash},
			wantCode:  amcheck.ExitFindings,
			wantCodes: []string{"no-catch-all"},
			notCodes:  []string{"alert-not-delivered", "catches-everything"},
		},
		{
			name: "a matcher that catches everything",
			config: `
route:
  receiver: 'null'
  routes:
  - receiver: smartmon
    matchers: ['severity =~ ".*"']
receivers:
- name: 'null'
- name: smartmon
  webhook_configs:
  - url: http://smartmon:9095/api/v1/alerts
    http_config: {authorization: {credentials: s3cr3t}}
`,
			args:      []string{crash},
			wantCode:  amcheck.ExitFindings,
			wantCodes: []string{"catches-everything"},
			notCodes:  []string{"no-catch-all", "alert-not-delivered"},
		},
		{
			name: "a negative matcher catches everything else too",
			config: `
route:
  receiver: 'null'
  routes:
  - receiver: smartmon
    matchers: ['alertname != "Watchdog"']
receivers:
- name: 'null'
- name: smartmon
  webhook_configs:
  - url: http://smartmon:9095/api/v1/alerts
    http_config: {authorization: {credentials: s3cr3t}}
`,
			wantCode:  amcheck.ExitFindings,
			wantCodes: []string{"catches-everything"},
		},
		{
			name: "webhook without our path, no auth, send_resolved off",
			config: `
route:
  receiver: 'null'
  routes:
  - receiver: smartmon
    matchers: ['alertname = "KubePodCrashLooping"']
  - receiver: smartmon-too
    matchers: ['alertname = "KubePodNotReady"']
receivers:
- name: 'null'
- name: smartmon
  webhook_configs:
  - url: http://smartmon-ingest.monitoring.svc:9095/
- name: smartmon-too
  webhook_configs:
  - url: http://10.0.0.7:9095/api/v1/alerts
    send_resolved: false
`,
			args:      []string{crash},
			wantCode:  amcheck.ExitFindings,
			wantCodes: []string{"wrong-path", "no-auth", "send-resolved-off", "alert-not-delivered"},
			notCodes:  []string{"no-ingest-receiver"},
		},
		{
			name: "global http_config authorization counts as auth",
			config: `
global:
  http_config:
    authorization: {type: Bearer, credentials: s3cr3t}
route:
  receiver: 'null'
  routes:
  - receiver: smartmon
    matchers: ['alertname = "KubePodCrashLooping"']
receivers:
- name: 'null'
- name: smartmon
  webhook_configs:
  - url: https://smartmon.example.com/api/v1/alerts
`,
			args:     []string{crash},
			wantCode: amcheck.ExitOK,
			notCodes: []string{"no-auth"},
			wantOut:  "Bearer",
		},
		{
			name: "an earlier sibling without continue shadows our route",
			config: `
route:
  receiver: 'null'
  routes:
  - receiver: team-pager
    matchers: ['namespace = "payments"']
  - receiver: smartmon
    matchers: ['alertname = "KubePodCrashLooping"']
receivers:
- name: 'null'
- name: team-pager
  webhook_configs:
  - url: https://pager.example.com/hook
- name: smartmon
  webhook_configs:
  - url: http://smartmon:9095/api/v1/alerts
    http_config: {basic_auth: {username: am, password: pw}}
`,
			args:      []string{crash, "--alert", "alertname=KubePodCrashLooping,namespace=shop"},
			wantCode:  amcheck.ExitFindings,
			wantCodes: []string{"alert-not-delivered"},
			wantOut:   `does NOT reach ingest: routes route.routes[0], receivers "team-pager"`,
		},
		{
			name: "continue on the sibling lets it through",
			config: `
route:
  receiver: 'null'
  routes:
  - receiver: team-pager
    matchers: ['namespace = "payments"']
    continue: true
  - receiver: smartmon
    matchers: ['alertname = "KubePodCrashLooping"']
receivers:
- name: 'null'
- name: team-pager
  webhook_configs:
  - url: https://pager.example.com/hook
- name: smartmon
  webhook_configs:
  - url: http://smartmon:9095/api/v1/alerts
    http_config: {basic_auth: {username: am, password: pw}}
`,
			args:     []string{crash},
			wantCode: amcheck.ExitOK,
			wantOut:  `receivers "team-pager", "smartmon"`,
		},
		{
			name: "--ingest-url must match the host",
			config: `
route:
  receiver: 'null'
  routes:
  - receiver: smartmon
    matchers: ['alertname = "KubePodCrashLooping"']
receivers:
- name: 'null'
- name: smartmon
  webhook_configs:
  - url: http://old-host:9095/api/v1/alerts
    http_config: {authorization: {credentials: s3cr3t}}
`,
			args:      []string{crash, "--ingest-url", "http://smon-ingest.monitoring.svc:9095"},
			wantCode:  amcheck.ExitFindings,
			wantCodes: []string{"no-ingest-receiver", "alert-not-delivered"},
		},
		{
			name:     "unknown key is a load error",
			config:   "route: {receiver: x}\nreceivers: [{name: x}]\nroutes: []\n",
			wantCode: amcheck.ExitUsage,
			wantErr:  "unknown key",
		},
		{
			name:     "bad --alert",
			config:   kpsDefault,
			args:     []string{"--alert", "namespace"},
			wantCode: amcheck.ExitUsage,
			wantErr:  "want name=value",
		},
		{
			name:     "--alert without alertname",
			config:   kpsDefault,
			args:     []string{"--alert", "namespace=x"},
			wantCode: amcheck.ExitUsage,
			wantErr:  "need an alertname",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "alertmanager.yml")
			require.NoError(t, os.WriteFile(path, []byte(tc.config), 0o600))
			args := make([]string, 0, len(tc.args)+1)
			sawFile := false
			for _, a := range tc.args {
				if a == "FILE" {
					a, sawFile = path, true
				}
				args = append(args, a)
			}
			if !sawFile {
				args = append(args, path)
			}
			var stdout, stderr bytes.Buffer
			code := amcheck.Run(context.Background(), args, &stdout, &stderr)
			out := stdout.String()
			assert.Equal(t, tc.wantCode, code, "stdout:\n%s\nstderr:\n%s", out, stderr.String())
			for _, c := range tc.wantCodes {
				assert.Contains(t, out, "["+c+"]")
			}
			for _, c := range tc.notCodes {
				assert.NotContains(t, out, "["+c+"]")
			}
			if tc.wantOut != "" {
				assert.Contains(t, out, tc.wantOut)
			}
			if tc.wantErr != "" {
				assert.Contains(t, stderr.String(), tc.wantErr)
			}
			assert.NotContains(t, out+stderr.String(), "s3cr3t", "credentials must never be printed")
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	assert.Equal(t, amcheck.ExitUsage, amcheck.Run(context.Background(), nil, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "usage: smartmon am-check")
	assert.Equal(t, amcheck.ExitUsage, amcheck.Run(context.Background(), []string{"/nonexistent/alertmanager.yml"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "load /nonexistent/alertmanager.yml")
}

func TestURLQueryIsNotPrinted(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "am.yml")
	cfg := strings.ReplaceAll(kpsWithSmartmon, "/api/v1/alerts", "/api/v1/alerts?token=hunter2")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	var stdout, stderr bytes.Buffer
	assert.Equal(t, amcheck.ExitOK, amcheck.Run(context.Background(), []string{path}, &stdout, &stderr))
	assert.NotContains(t, stdout.String(), "hunter2")
}

func TestParseLabels(t *testing.T) {
	t.Parallel()
	ls, err := amcheck.ParseLabels(` alertname="KubePodCrashLooping", namespace='payments' ,`)
	require.NoError(t, err)
	assert.Equal(t, model.LabelSet{"alertname": "KubePodCrashLooping", "namespace": "payments"}, ls)
	_, err = amcheck.ParseLabels("alertname=x,0bad=y")
	require.Error(t, err)
}
