package enricher

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// need is one API permission the enricher uses. Every API call names its
// need, so a 403 can say exactly which rule is missing, and the tests can
// check the code against the documented rules.
type need struct {
	Group, Resource, Verb string
}

func (n need) String() string {
	g := n.Group
	if g == "" {
		g = `""`
	}
	return fmt.Sprintf("{apiGroups: [%s], resources: [%s], verbs: [%s]}", g, n.Resource, n.Verb)
}

// The permissions the enricher uses, all read-only. Keep
// deploy/helm/smart-k8s-monitor/files/enricher-rbac-rules.yaml in step: a
// test fails when they differ.
var (
	needGetPod          = need{"", "pods", "get"}
	needListPods        = need{"", "pods", "list"}
	needPodLog          = need{"", "pods/log", "get"}
	needListEvents      = need{"", "events", "list"}
	needGetNode         = need{"", "nodes", "get"}
	needGetReplicaSet   = need{"apps", "replicasets", "get"}
	needListReplicaSet  = need{"apps", "replicasets", "list"}
	needGetDeployment   = need{"apps", "deployments", "get"}
	needGetStatefulSet  = need{"apps", "statefulsets", "get"}
	needGetDaemonSet    = need{"apps", "daemonsets", "get"}
	needGetJob          = need{"batch", "jobs", "get"}
	needGetCronJob      = need{"batch", "cronjobs", "get"}
	needGetPVC          = need{"", "persistentvolumeclaims", "get"}
	needListPVC         = need{"", "persistentvolumeclaims", "list"}
	needGetStorageClass = need{"storage.k8s.io", "storageclasses", "get"}
	needGetHPA          = need{"autoscaling", "horizontalpodautoscalers", "get"}
)

func allNeeds() []need {
	return []need{
		needGetPod, needListPods, needPodLog, needListEvents, needGetNode,
		needGetReplicaSet, needListReplicaSet, needGetDeployment, needGetStatefulSet,
		needGetDaemonSet, needGetJob, needGetCronJob,
		needGetPVC, needListPVC, needGetStorageClass, needGetHPA,
	}
}

// RequiredRules returns the RBAC rules the enricher needs, one rule per
// (group, resource) with its verbs, sorted. They grant nothing on Secrets.
func RequiredRules() []rbacv1.PolicyRule {
	verbs := map[[2]string][]string{}
	for _, n := range allNeeds() {
		k := [2]string{n.Group, n.Resource}
		verbs[k] = append(verbs[k], n.Verb)
	}
	keys := make([][2]string, 0, len(verbs))
	for k := range verbs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0]+"/"+keys[i][1] < keys[j][0]+"/"+keys[j][1]
	})
	out := make([]rbacv1.PolicyRule, 0, len(keys))
	for _, k := range keys {
		v := verbs[k]
		sort.Strings(v)
		out = append(out, rbacv1.PolicyRule{APIGroups: []string{k[0]}, Resources: []string{k[1]}, Verbs: v})
	}
	return out
}

// Permissions flattens rules to "group/resource:verb" strings, for comparing
// rule sets however they are grouped.
func Permissions(rules []rbacv1.PolicyRule) []string {
	set := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					set[g+"/"+res+":"+v] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// forbiddenHint is the sentence recorded once per missing permission.
func forbiddenHint(n need, namespace string) string {
	where := "cluster-wide"
	if namespace != "" {
		where = "in namespace " + namespace
	}
	return fmt.Sprintf("forbidden: cannot %s %s %s; missing RBAC rule %s (see deploy/helm/smart-k8s-monitor/files/enricher-rbac-rules.yaml)",
		n.Verb, strings.TrimPrefix(n.Resource, "/"), where, n)
}
