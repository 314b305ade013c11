package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// valueSets are the configurations the chart must render; each must pass
// lint, render, and decode strictly.
var valueSets = map[string][]string{
	"default": nil,
	"distributed": {
		"mode=distributed", "nats.url=nats://nats.nats.svc:4222", "nats.auth.existingSecret=nats-smartmon",
	},
	"distributed-token-tls-scaled": {
		"mode=distributed", "nats.url=tls://nats-0.nats:4222\\,tls://nats-1.nats:4222", "nats.auth.type=token",
		"nats.auth.existingSecret=nats-token", "nats.tls.existingSecret=nats-ca", "ingest.replicas=3",
		"enricher.replicas=2", "advisor.replicas=2", "notifier.replicas=2", "advisor.backend=openai",
		"advisor.url=http://vllm.ai.svc:8000",
	},
	"distributed-creds-no-rbac": {
		"mode=distributed", "nats.url=nats://nats:4222", "nats.auth.type=creds", "nats.auth.existingSecret=nats-creds",
		"enricher.rbac.create=false", "enricher.serviceAccount.create=false", "enricher.serviceAccount.name=smartmon-reader",
		"podDisruptionBudget.enabled=false",
	},
	"everything-on": {
		"ollama.enabled=true", "ollama.gpu.enabled=true", "ollama.gpu.runtimeClassName=nvidia",
		"prometheusRule.enabled=true", "prometheusRule.labels.release=kube-prometheus-stack",
		"alertmanagerConfig.enabled=true", "alertmanagerConfig.labels.alertmanagerConfig=smartmon",
		"serviceMonitor.enabled=true", "networkPolicy.enabled=true",
		"networkPolicy.ingestFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
		"networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
		"enricher.rbac.namespaced=true", "enricher.rbac.namespaces={payments,shop}",
		"secrets.discordWebhookUrl=https://discord.com/api/webhooks/1/abc",
		"config.advisor.model=llama3.1",
	},
	"distributed-everything-on": {
		"mode=distributed", "nats.url=nats://nats:4222", "nats.auth.type=none",
		"prometheusRule.enabled=true", "alertmanagerConfig.enabled=true", "serviceMonitor.enabled=true",
		"networkPolicy.enabled=true", "ollama.enabled=true", "ollama.persistence.enabled=false",
	},
	"existing-secret-unauthenticated-ephemeral": {
		"secrets.existingSecret=my-smartmon", "ingest.allowUnauthenticated=true",
		"allInOne.persistence.enabled=false", "image.digest=sha256:" + strings.Repeat("ab", 32),
		"fullnameOverride=smon",
	},
}

// render runs helm template and decodes every object strictly into its API
// type: an unknown or misplaced field fails the test.
func render(t *testing.T, sets []string) []any {
	t.Helper()
	args := append([]string{"template", "smon", chartDir(), "--namespace", "monitoring"}, setArgs(sets)...)
	out, stderr, err := helm(t, args...)
	require.NoError(t, err, "helm template: %s", stderr)
	var objs []any
	for doc := range strings.SplitSeq(out, "\n---") {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		objs = append(objs, decodeStrict(t, []byte(doc)))
	}
	return objs
}

func stripComments(doc string) string {
	var b strings.Builder
	for l := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func decodeStrict(t *testing.T, doc []byte) any {
	t.Helper()
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	require.NoError(t, yaml.Unmarshal(doc, &meta))
	var obj any
	switch meta.APIVersion + "/" + meta.Kind {
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	case "v1/Service":
		obj = &corev1.Service{}
	case "v1/ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "v1/PersistentVolumeClaim":
		obj = &corev1.PersistentVolumeClaim{}
	case "apps/v1/Deployment":
		obj = &appsv1.Deployment{}
	case "batch/v1/Job":
		obj = &batchv1.Job{}
	case "policy/v1/PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		obj = &rbacv1.ClusterRole{}
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		obj = &rbacv1.ClusterRoleBinding{}
	case "rbac.authorization.k8s.io/v1/Role":
		obj = &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		obj = &rbacv1.RoleBinding{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		obj = &monitoringv1.PrometheusRule{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		obj = &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1alpha1/AlertmanagerConfig":
		obj = &monitoringv1alpha1.AlertmanagerConfig{}
	default:
		t.Fatalf("rendered an object of unexpected type %s %s:\n%s", meta.APIVersion, meta.Kind, doc)
	}
	require.NoError(t, yaml.UnmarshalStrict(doc, obj), "strict decode of %s:\n%s", meta.Kind, doc)
	return obj
}

func ofType[T any](objs []any) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestHelmLint(t *testing.T) {
	t.Parallel()
	for name, sets := range valueSets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", chartDir()}, setArgs(sets)...)
			out, stderr, err := helm(t, args...)
			require.NoError(t, err, "helm lint:\n%s\n%s", out, stderr)
		})
	}
}

func TestHelmTemplate(t *testing.T) {
	t.Parallel()
	for name, sets := range valueSets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, sets)
			distributed := slices.Contains(sets, "mode=distributed")
			deployments := ofType[*appsv1.Deployment](objs)
			var names []string
			for _, d := range deployments {
				if d.Labels["app.kubernetes.io/component"] != "ollama" {
					names = append(names, d.Labels["app.kubernetes.io/component"])
				}
				checkPod(t, d.Name, &d.Spec.Template.Spec)
			}
			if distributed {
				assert.ElementsMatch(t, []string{"ingest", "enricher", "advisor", "notifier"}, names)
			} else {
				assert.Equal(t, []string{"allinone"}, names)
			}
			for _, j := range ofType[*batchv1.Job](objs) {
				checkPod(t, j.Name, &j.Spec.Template.Spec)
			}
			checkSecretRefs(t, objs, sets)
			checkEnricherRBAC(t, objs)
			checkServicesSelectPods(t, objs)
		})
	}
}

// checkPod asserts the restricted security profile and probes.
func checkPod(t *testing.T, name string, spec *corev1.PodSpec) {
	t.Helper()
	require.NotNil(t, spec.SecurityContext, name)
	assert.True(t, ptrTrue(spec.SecurityContext.RunAsNonRoot), "%s runAsNonRoot", name)
	require.NotNil(t, spec.SecurityContext.SeccompProfile, name)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, spec.SecurityContext.SeccompProfile.Type, name)
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		require.NotNil(t, sc, "%s/%s securityContext", name, c.Name)
		assert.True(t, ptrTrue(sc.ReadOnlyRootFilesystem), "%s/%s readOnlyRootFilesystem", name, c.Name)
		require.NotNil(t, sc.AllowPrivilegeEscalation, "%s/%s", name, c.Name)
		assert.False(t, *sc.AllowPrivilegeEscalation, "%s/%s allowPrivilegeEscalation", name, c.Name)
		require.NotNil(t, sc.Capabilities, "%s/%s", name, c.Name)
		assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s/%s drops ALL", name, c.Name)
		assert.NotEmpty(t, c.Resources.Requests, "%s/%s resource requests", name, c.Name)
		if spec.RestartPolicy == "" || spec.RestartPolicy == corev1.RestartPolicyAlways {
			require.NotNil(t, c.LivenessProbe, "%s/%s liveness probe", name, c.Name)
			require.NotNil(t, c.ReadinessProbe, "%s/%s readiness probe", name, c.Name)
		}
	}
}

func ptrTrue(b *bool) bool { return b != nil && *b }

// checkSecretRefs: every required secretKeyRef names a Secret the chart
// renders or one the values say exists.
func checkSecretRefs(t *testing.T, objs []any, sets []string) {
	t.Helper()
	known := map[string]bool{}
	for _, s := range ofType[*corev1.Secret](objs) {
		known[s.Name] = true
	}
	for _, s := range sets {
		if k, v, _ := strings.Cut(s, "="); strings.HasSuffix(k, "existingSecret") {
			known[v] = true
		}
	}
	for _, d := range ofType[*appsv1.Deployment](objs) {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				assert.True(t, known[e.ValueFrom.SecretKeyRef.Name], "%s: env %s refers to unknown Secret %s", d.Name, e.Name, e.ValueFrom.SecretKeyRef.Name)
				if strings.Contains(e.Name, "WEBHOOK_URL") {
					assert.True(t, ptrTrue(e.ValueFrom.SecretKeyRef.Optional), "%s: sink URL %s must be optional", d.Name, e.Name)
				}
			}
		}
	}
}

// writeVerbs are the verbs that change the cluster.
var writeVerbs = []string{"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate", "approve", "sign", "*"}

// checkEnricherRBAC: read-only, never Secrets, nothing beyond what it reads.
func checkEnricherRBAC(t *testing.T, objs []any) {
	t.Helper()
	allowed := map[string]bool{
		"pods": true, "pods/log": true, "events": true, "replicasets": true, "deployments": true,
		"statefulsets": true, "daemonsets": true, "jobs": true, "cronjobs": true, "nodes": true,
		"persistentvolumeclaims": true, "storageclasses": true, "horizontalpodautoscalers": true,
	}
	var rules []rbacv1.PolicyRule
	for _, r := range ofType[*rbacv1.ClusterRole](objs) {
		rules = append(rules, r.Rules...)
	}
	for _, r := range ofType[*rbacv1.Role](objs) {
		rules = append(rules, r.Rules...)
		for _, rule := range r.Rules {
			assert.NotContains(t, rule.Resources, "nodes", "a Role cannot grant cluster-scoped nodes")
			assert.NotContains(t, rule.Resources, "storageclasses", "a Role cannot grant cluster-scoped storageclasses")
		}
	}
	for _, rule := range rules {
		for _, res := range rule.Resources {
			assert.NotEqual(t, "secrets", res, "the enricher must never read Secrets")
			assert.NotEqual(t, "*", res)
			assert.True(t, allowed[res], "unexpected resource %q in the enricher's RBAC", res)
		}
		for _, v := range rule.Verbs {
			assert.NotContains(t, writeVerbs, v, "write verb %q in the enricher's RBAC", v)
		}
		assert.Empty(t, rule.NonResourceURLs)
		assert.NotContains(t, rule.APIGroups, "*")
	}
}

// checkServicesSelectPods: every Service selects a rendered pod template.
func checkServicesSelectPods(t *testing.T, objs []any) {
	t.Helper()
	deps := ofType[*appsv1.Deployment](objs)
	for _, svc := range ofType[*corev1.Service](objs) {
		found := false
		for _, d := range deps {
			match := true
			for k, v := range svc.Spec.Selector {
				if d.Spec.Template.Labels[k] != v {
					match = false
				}
			}
			found = found || match
		}
		assert.True(t, found, "Service %s selects no pods", svc.Name)
	}
}

func TestRBACRulesFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(chartDir(), "files", "enricher-rbac-rules.yaml"))
	require.NoError(t, err)
	var rules []rbacv1.PolicyRule
	require.NoError(t, yaml.UnmarshalStrict(b, &rules))
	require.NotEmpty(t, rules)
	checkEnricherRBAC(t, []any{&rbacv1.ClusterRole{Rules: rules}})
}

func TestDefaultRBACIsClusterWide(t *testing.T) {
	t.Parallel()
	objs := render(t, nil)
	require.Len(t, ofType[*rbacv1.ClusterRole](objs), 1)
	require.Len(t, ofType[*rbacv1.ClusterRoleBinding](objs), 1)
	assert.Empty(t, ofType[*rbacv1.Role](objs))

	ns := render(t, []string{"enricher.rbac.namespaced=true", "enricher.rbac.namespaces={payments,shop}"})
	assert.Empty(t, ofType[*rbacv1.ClusterRole](ns))
	var where []string
	for _, r := range ofType[*rbacv1.Role](ns) {
		where = append(where, r.Namespace)
	}
	assert.ElementsMatch(t, []string{"payments", "shop"}, where)
}

func TestAlertmanagerConfig(t *testing.T) {
	t.Parallel()
	objs := render(t, []string{"alertmanagerConfig.enabled=true"})
	amcs := ofType[*monitoringv1alpha1.AlertmanagerConfig](objs)
	require.Len(t, amcs, 1)
	spec := amcs[0].Spec
	require.NotNil(t, spec.Route)
	assert.Equal(t, "null", spec.Route.Receiver, "the top route falls back to a receiver with no integration")
	var names []string
	for _, r := range spec.Receivers {
		names = append(names, r.Name)
	}
	assert.ElementsMatch(t, []string{"null", "smartmon"}, names)
	var smartmon monitoringv1alpha1.Receiver
	for _, r := range spec.Receivers {
		if r.Name == "smartmon" {
			smartmon = r
		}
	}
	require.Len(t, smartmon.WebhookConfigs, 1)
	wh := smartmon.WebhookConfigs[0]
	require.NotNil(t, wh.URL)
	assert.Equal(t, "http://smon-smart-k8s-monitor-ingest.monitoring.svc:9095/api/v1/alerts", string(*wh.URL))
	assert.True(t, ptrTrue(wh.SendResolved))
	require.NotNil(t, wh.HTTPConfig)
	require.NotNil(t, wh.HTTPConfig.Authorization)
	assert.Equal(t, "Bearer", wh.HTTPConfig.Authorization.Type)
	require.NotNil(t, wh.HTTPConfig.Authorization.Credentials)
	assert.Equal(t, "ingest-token", wh.HTTPConfig.Authorization.Credentials.Key)
	secrets := ofType[*corev1.Secret](objs)
	require.Len(t, secrets, 1)
	assert.Equal(t, secrets[0].Name, wh.HTTPConfig.Authorization.Credentials.Name)
	assert.NotEmpty(t, secrets[0].Data["ingest-token"], "a token is generated when none is given")
}

func TestPrometheusRule(t *testing.T) {
	t.Parallel()
	objs := render(t, []string{"prometheusRule.enabled=true"})
	rules := ofType[*monitoringv1.PrometheusRule](objs)
	require.Len(t, rules, 1)
	var alerts []string
	for _, g := range rules[0].Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			assert.Contains(t, r.Expr.String(), `job="kube-state-metrics"`, r.Alert)
		}
	}
	assert.ElementsMatch(t, []string{"SmartmonPodRestartingOften", "SmartmonPodCrashLooping", "SmartmonContainerOOMKilled"}, alerts)
}

func TestConfigFileMergesValues(t *testing.T) {
	t.Parallel()
	objs := render(t, []string{"config.advisor.model=llama3.1", "log.level=debug"})
	cms := ofType[*corev1.ConfigMap](objs)
	require.Len(t, cms, 1)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cms[0].Data["config.yaml"]), &cfg))
	assert.Equal(t, "/data", cfg["data_dir"])
	assert.Equal(t, map[string]any{"backend": "ollama", "model": "llama3.1"}, cfg["advisor"])
	assert.Equal(t, "debug", cfg["log"].(map[string]any)["level"])
}

// TestValuesSchemaRejects: wrong types and impossible combinations fail
// before anything reaches a cluster.
func TestValuesSchemaRejects(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		sets   []string
		values string
		want   string
		// Checked by the templates (fail), which helm lint does not run.
		templateOnly bool
	}{
		"replicas as a string":   {sets: []string{"ingest.replicas=two"}, want: "ingest/replicas"},
		"unknown mode":           {sets: []string{"mode=microservices"}, want: "mode"},
		"stream replicas over 5": {sets: []string{"nats.replicas=7"}, want: "nats/replicas"},
		"deadline not a duration": {
			sets: []string{"advisor.deadline=soon"}, want: "advisor/deadline",
		},
		"persistence flag as a string": {values: "allInOne:\n  persistence:\n    enabled: \"yes\"\n", want: "allInOne/persistence/enabled"},
		"misspelt top-level key":       {values: "ingets:\n  replicas: 2\n", want: "ingets"},
		"misspelt nested key":          {values: "ingest:\n  replica: 2\n", want: "replica"},
		"unknown backend":              {sets: []string{"advisor.backend=llamafile"}, want: "advisor/backend"},
		"empty matcher list":           {values: "alertmanagerConfig:\n  matchers: []\n", want: "matchers"},
		"bad match type":               {values: "alertmanagerConfig:\n  matchers: [{name: a, value: b, matchType: '~'}]\n", want: "matchType"},
		"nats url without scheme":      {sets: []string{"nats.url=nats.nats.svc:4222"}, want: "nats/url"},
		"distributed without nats.url": {sets: []string{"mode=distributed"}, want: "needs nats.url", templateOnly: true},
		"distributed without the credentials secret": {
			sets: []string{"mode=distributed", "nats.url=nats://nats:4222"}, want: "needs nats.auth.existingSecret", templateOnly: true,
		},
		"alertmanagerConfig with unauthenticated ingest": {
			sets: []string{"alertmanagerConfig.enabled=true", "ingest.allowUnauthenticated=true"}, want: "allowUnauthenticated", templateOnly: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			extra := setArgs(tc.sets)
			if tc.values != "" {
				extra = append(extra, "--values", writeFile(t, "values.yaml", tc.values))
			}
			cmds := [][]string{{"template", "smon", chartDir()}, {"lint", chartDir()}}
			if tc.templateOnly {
				cmds = cmds[:1]
			}
			for _, cmd := range cmds {
				out, stderr, err := helm(t, append(cmd, extra...)...)
				require.Error(t, err, "helm %s accepted bad values:\n%s", cmd[0], out)
				assert.Contains(t, out+stderr, tc.want, "helm %s", cmd[0])
			}
		})
	}
}

// TestNATSValues: the values for the official NATS chart (which cannot be
// fetched here) keep the shape docs/deploy.md promises and match our
// distributed defaults.
func TestNATSValues(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "nats", "values.yaml"))
	require.NoError(t, err)
	var v struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled   bool `json:"enabled"`
				FileStore struct {
					Enabled bool `json:"enabled"`
					PVC     struct {
						Enabled bool   `json:"enabled"`
						Size    string `json:"size"`
					} `json:"pvc"`
				} `json:"fileStore"`
			} `json:"jetstream"`
			Merge struct {
				Accounts map[string]struct {
					JetStream string `json:"jetstream"`
					Users     []struct {
						User     string `json:"user"`
						Password string `json:"password"`
					} `json:"users"`
				} `json:"accounts"`
			} `json:"merge"`
		} `json:"config"`
		Container struct {
			Env map[string]corev1.EnvVar `json:"env"`
		} `json:"container"`
	}
	require.NoError(t, yaml.Unmarshal(b, &v))
	assert.True(t, v.Config.Cluster.Enabled)
	assert.Equal(t, 3, v.Config.Cluster.Replicas)
	assert.True(t, v.Config.JetStream.Enabled)
	assert.True(t, v.Config.JetStream.FileStore.Enabled)
	assert.True(t, v.Config.JetStream.FileStore.PVC.Enabled, "JetStream must persist")
	assert.NotEmpty(t, v.Config.JetStream.FileStore.PVC.Size)

	chartValues, err := os.ReadFile(filepath.Join(chartDir(), "values.yaml"))
	require.NoError(t, err)
	var ours struct {
		NATS struct {
			Replicas int `json:"replicas"`
			Auth     struct {
				Type        string `json:"type"`
				User        string `json:"user"`
				PasswordKey string `json:"passwordKey"`
			} `json:"auth"`
		} `json:"nats"`
	}
	require.NoError(t, yaml.Unmarshal(chartValues, &ours))
	assert.Equal(t, v.Config.Cluster.Replicas, ours.NATS.Replicas, "stream replicas = cluster size")
	assert.Equal(t, "userPassword", ours.NATS.Auth.Type)

	acct, ok := v.Config.Merge.Accounts["SMARTMON"]
	require.True(t, ok)
	assert.Equal(t, "enabled", acct.JetStream)
	require.Len(t, acct.Users, 1)
	assert.Equal(t, ours.NATS.Auth.User, acct.Users[0].User, "NATS user = our chart's nats.auth.user")
	envName := strings.TrimSuffix(strings.TrimPrefix(acct.Users[0].Password, "<< $"), " >>")
	ref := v.Container.Env[envName]
	require.NotNil(t, ref.ValueFrom, "the password %q comes from a Secret", acct.Users[0].Password)
	assert.Equal(t, ours.NATS.Auth.PasswordKey, ref.ValueFrom.SecretKeyRef.Key)
}

func TestNotesHaveTheSnippet(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(chartDir(), "templates", "NOTES.txt"))
	require.NoError(t, err)
	for _, want := range []string{`receiver: "null"`, "- name: \"null\"", "send_resolved: true", "type: Bearer", "/api/v1/alerts", "am-check"} {
		assert.Contains(t, string(b), want, "NOTES.txt lacks the snippet line")
	}
}
