package envelope

import (
	"fmt"
	"time"
)

// SampleCrashLoop returns the notification Alertmanager sends for a pod in
// CrashLoopBackOff under kube-prometheus-stack's KubePodCrashLooping rule.
// `smartmon send-test-alert` posts it; tests use it as the typical input.
// startsAt is fixed per pod so that repeated sends deduplicate like real
// Alertmanager re-sends do.
func SampleCrashLoop(startsAt time.Time, resolved bool) Webhook {
	labels := map[string]string{
		"alertname":  "KubePodCrashLooping",
		"namespace":  "payments",
		"pod":        "payments-api-7d9f8b6c5-x2x7k",
		"container":  "api",
		"job":        "kube-state-metrics",
		"severity":   "critical",
		"prometheus": "monitoring/kube-prometheus-stack-prometheus",
		"reason":     "CrashLoopBackOff",
		"uid":        "6f1b2c1e-3d4a-4c5b-9e8f-0a1b2c3d4e5f",
	}
	status, ends := StatusFiring, time.Time{}
	if resolved {
		status, ends = StatusResolved, startsAt.Add(23*time.Minute)
	}
	a := Alert{
		Status: status,
		Labels: labels,
		Annotations: map[string]string{
			"description": "Pod payments/payments-api-7d9f8b6c5-x2x7k (api) is in waiting state (reason: \"CrashLoopBackOff\").",
			"runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
			"summary":     "Pod is crash looping.",
		},
		StartsAt:     startsAt.UTC(),
		EndsAt:       ends,
		GeneratorURL: "http://prometheus.monitoring:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting_reason%7Breason%3D%22CrashLoopBackOff%22%7D%5B5m%5D%29+%3E%3D+1",
		Fingerprint:  "3f9a1c2b7d4e5f60",
	}
	common := map[string]string{}
	for k, v := range labels {
		common[k] = v
	}
	return Webhook{
		Version:           WebhookVersion,
		GroupKey:          `{}/{severity="critical"}:{alertname="KubePodCrashLooping", namespace="payments"}`,
		Status:            status,
		Receiver:          "smartmon",
		GroupLabels:       map[string]string{"alertname": "KubePodCrashLooping", "namespace": "payments"},
		CommonLabels:      common,
		CommonAnnotations: a.Annotations,
		ExternalURL:       "http://localhost:9093",
		Alerts:            []Alert{a},
	}
}

// SampleGroup returns a firing notification with n pods of one deployment,
// for storms and benchmarks. Each call with the same arguments yields the
// same notification id.
func SampleGroup(deployment string, n int, startsAt time.Time) Webhook {
	w := SampleCrashLoop(startsAt, false)
	w.GroupKey = fmt.Sprintf(`{}:{alertname="KubePodCrashLooping", namespace="payments", deployment=%q}`, deployment)
	w.Alerts = nil
	for i := range n {
		a := SampleCrashLoop(startsAt, false).Alerts[0]
		a.Labels["pod"] = fmt.Sprintf("%s-7d9f8b6c5-%05d", deployment, i)
		a.Labels["deployment"] = deployment
		a.Fingerprint = fmt.Sprintf("%x", []byte(deployment+fmt.Sprint(i)))
		w.Alerts = append(w.Alerts, a)
	}
	w.CommonLabels = map[string]string{"alertname": "KubePodCrashLooping", "namespace": "payments", "severity": "critical", "container": "api", "deployment": deployment}
	return w
}
