package enricher

import (
	"context"
	"errors"
	"sort"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// Labels of the kubelet volume metrics and kube-state-metrics that name a
// claim (KubePersistentVolumeFillingUp, KubePersistentVolumeErrors) or an
// autoscaler (KubeHpaMaxedOut, KubeHpaReplicasMismatch).
const (
	pvcLabel = "persistentvolumeclaim"
	hpaLabel = "horizontalpodautoscaler"
)

// Bounds on the claims and autoscalers of one notification, so a group of
// many filling volumes costs a bounded number of API calls.
const (
	maxTargetPVCs = 10
	maxTargetHPAs = 5
	// maxPodClaims bounds the claims looked at for one Pending pod.
	maxPodClaims = 3
	// maxUsedBy bounds the pod names listed as mounting one claim.
	maxUsedBy = 20
)

// selectedNodeAnnotation is set by the scheduler on a WaitForFirstConsumer
// claim: the node the volume has to be provisioned for.
const selectedNodeAnnotation = "volume.kubernetes.io/selected-node"

// nsPodList is one namespace's pods, listed once per notification.
type nsPodList struct {
	pods []*corev1.Pod
	err  error
}

// claims gathers the claims the alerts name: one GET each for a few in a
// namespace, one paged LIST for more; then each claim's events, its
// StorageClass and the pods that mount it.
func (st *gather) claims(ctx context.Context, refs []objRef) {
	byNS := map[string][]string{}
	var order []string
	for _, r := range refs {
		if st.pvcs[r.String()] {
			// Already gathered for a Pending pod of the alert: it is a
			// target too, so it is not "for" that pod only.
			for i := range st.res.Detail.PVCs {
				if c := &st.res.Detail.PVCs[i]; c.Namespace == r.namespace && c.Name == r.name {
					c.For = ""
				}
			}
			continue
		}
		if len(byNS[r.namespace]) == 0 {
			order = append(order, r.namespace)
		}
		byNS[r.namespace] = append(byNS[r.namespace], r.name)
	}
	for _, ns := range order {
		names := byNS[ns]
		found, readable := st.fetchClaims(ctx, ns, names)
		for _, name := range names {
			st.pvcs[ns+"/"+name] = true
			c, ok := found[name]
			switch {
			case ok:
				pe := st.claimEvidence(ctx, c, "")
				st.claimUsers(ctx, &pe)
				st.res.Detail.PVCs = append(st.res.Detail.PVCs, pe)
			case readable:
				st.res.Detail.PVCs = append(st.res.Detail.PVCs, envelope.PVCEvidence{Namespace: ns, Name: st.x(name), Gone: true})
				st.errorf("persistentvolumeclaim %s/%s not found: it was deleted before we looked", ns, name)
			default:
				// The claim could not be read (forbidden, timeout): the
				// pods that mount it are still evidence.
				pe := envelope.PVCEvidence{Namespace: ns, Name: st.x(name)}
				st.claimUsers(ctx, &pe)
				st.res.Detail.PVCs = append(st.res.Detail.PVCs, pe)
			}
		}
	}
}

// fetchClaims reads the named claims of one namespace. readable is false
// when the lookups failed, so a missing name means "unknown", not "gone".
func (st *gather) fetchClaims(ctx context.Context, ns string, names []string) (map[string]*corev1.PersistentVolumeClaim, bool) {
	found := make(map[string]*corev1.PersistentVolumeClaim, len(names))
	if len(names) <= st.g.cfg.PodsInDetail {
		readable := true
		for _, name := range names {
			c, err := call(ctx, st, needGetPVC, ns, "get persistentvolumeclaim "+ns+"/"+name, func(ctx context.Context) (*corev1.PersistentVolumeClaim, error) {
				return st.g.kc.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
			})
			switch {
			case err == nil:
				found[name] = c
			case !errors.Is(err, errNotFound):
				readable = false
			}
		}
		return found, readable
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	complete, err := listPaged(ctx, st, needListPVC, ns, "list persistentvolumeclaims in "+ns, st.g.kc.CoreV1().PersistentVolumeClaims(ns).List, func(list *corev1.PersistentVolumeClaimList) bool {
		for i := range list.Items {
			if want[list.Items[i].Name] {
				found[list.Items[i].Name] = &list.Items[i]
			}
		}
		return len(found) == len(want)
	})
	return found, complete && err == nil
}

// claimEvidence is what `kubectl describe pvc` shows, with the claim's
// events and, for a claim an alert names, whether its class can expand.
func (st *gather) claimEvidence(ctx context.Context, c *corev1.PersistentVolumeClaim, forPod string) envelope.PVCEvidence {
	pe := envelope.PVCEvidence{
		Namespace: c.Namespace, Name: c.Name, For: forPod, Phase: string(c.Status.Phase),
		Terminating: c.DeletionTimestamp != nil, Volume: st.x(c.Spec.VolumeName),
		SelectedNode: st.x(c.Annotations[selectedNodeAnnotation]),
	}
	if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		pe.Requested = q.String()
	}
	if q, ok := c.Status.Capacity[corev1.ResourceStorage]; ok {
		pe.Capacity = q.String()
	}
	if c.Spec.StorageClassName != nil {
		pe.StorageClass = st.x(*c.Spec.StorageClassName)
	}
	for _, m := range c.Spec.AccessModes {
		pe.AccessModes = append(pe.AccessModes, string(m))
	}
	if c.Spec.VolumeMode != nil {
		pe.VolumeMode = string(*c.Spec.VolumeMode)
	}
	pe.Conditions = conditions(c.Status.Conditions, func(c corev1.PersistentVolumeClaimCondition) envelope.ConditionEvidence {
		return envelope.ConditionEvidence{Type: string(c.Type), Status: string(c.Status), Reason: st.x(c.Reason), Message: st.x(c.Message)}
	})
	pe.Events = st.events(ctx, c.Namespace, "PersistentVolumeClaim", c.Name, string(c.UID))
	// A Pending pod's claim needs its events, not its class; skip_nodes
	// means namespaced RBAC, which cannot grant cluster-scoped classes.
	if forPod == "" && c.Spec.StorageClassName != nil && *c.Spec.StorageClassName != "" && !st.g.cfg.SkipNodes {
		pe.Expandable = st.storageClass(ctx, *c.Spec.StorageClassName)
	}
	return pe
}

// storageClass reports whether a class allows volume expansion, once per
// class and notification; nil when it could not be read.
func (st *gather) storageClass(ctx context.Context, name string) *bool {
	if v, ok := st.classes[name]; ok {
		return v
	}
	sc, err := call(ctx, st, needGetStorageClass, "", "get storageclass "+name, func(ctx context.Context) (*storagev1.StorageClass, error) {
		return st.g.kc.StorageV1().StorageClasses().Get(ctx, name, metav1.GetOptions{})
	})
	var v *bool
	switch {
	case err == nil:
		v = ptrBool(sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion)
	case errors.Is(err, errNotFound):
		st.errorf("storageclass %s not found: its claims can be neither provisioned nor expanded", name)
	}
	st.classes[name] = v
	return v
}

func ptrBool(b bool) *bool { return &b }

// podList lists a namespace's pods once per notification, in pages as
// podsIn does.
func (st *gather) podList(ctx context.Context, ns string) *nsPodList {
	if pl, ok := st.nsPods[ns]; ok {
		return pl
	}
	pl := &nsPodList{}
	st.nsPods[ns] = pl
	_, pl.err = listPaged(ctx, st, needListPods, ns, "list pods in "+ns, st.g.kc.CoreV1().Pods(ns).List, func(list *corev1.PodList) bool {
		for i := range list.Items {
			pl.pods = append(pl.pods, &list.Items[i])
		}
		return false
	})
	return pl
}

// mounts reports whether a pod uses the claim, directly or as a generic
// ephemeral volume (whose claim is named <pod>-<volume>).
func mounts(p *corev1.Pod, claim string) bool {
	for _, v := range p.Spec.Volumes {
		if claimOf(p, v) == claim {
			return true
		}
	}
	return false
}

func claimOf(p *corev1.Pod, v corev1.Volume) string {
	switch {
	case v.PersistentVolumeClaim != nil:
		return v.PersistentVolumeClaim.ClaimName
	case v.Ephemeral != nil:
		return p.Name + "-" + v.Name
	}
	return ""
}

// claimUsers finds the pods that mount a claim and gathers the least
// healthy of them in detail, at most cfg.PodsInDetail over all claims.
func (st *gather) claimUsers(ctx context.Context, pe *envelope.PVCEvidence) {
	pl := st.podList(ctx, pe.Namespace)
	if pl.err != nil {
		pe.UsersUnknown = true
		return
	}
	var users []*corev1.Pod
	for _, p := range pl.pods {
		if mounts(p, pe.Name) {
			users = append(users, p)
		}
	}
	sort.SliceStable(users, func(i, j int) bool {
		if bi, bj := badness(users[i]), badness(users[j]); bi != bj {
			return bi > bj
		}
		return users[i].Name < users[j].Name
	})
	pe.UsedByCount = len(users)
	var pick []*corev1.Pod
	for i, p := range users {
		if i < maxUsedBy {
			pe.UsedBy = append(pe.UsedBy, st.x(p.Name+" ("+podStatus(p)+")"))
		}
		if !st.detailed[p.Namespace+"/"+p.Name] && st.claimPods < st.g.cfg.PodsInDetail {
			st.claimPods++
			pick = append(pick, p)
		}
	}
	st.podGroups(ctx, pick)
}

// podClaims adds the claims of a Pending pod that are not Bound ("pod has
// unbound immediate PersistentVolumeClaims"), at most maxPodClaims per pod.
func (st *gather) podClaims(ctx context.Context, p *corev1.Pod) {
	n := 0
	for _, v := range p.Spec.Volumes {
		name := claimOf(p, v)
		if name == "" {
			continue
		}
		if n == maxPodClaims {
			return
		}
		n++
		key := p.Namespace + "/" + name
		if st.pvcs[key] {
			continue
		}
		c, err := call(ctx, st, needGetPVC, p.Namespace, "get persistentvolumeclaim "+key, func(ctx context.Context) (*corev1.PersistentVolumeClaim, error) {
			return st.g.kc.CoreV1().PersistentVolumeClaims(p.Namespace).Get(ctx, name, metav1.GetOptions{})
		})
		switch {
		case errors.Is(err, errNotFound):
			st.pvcs[key] = true
			st.res.Detail.PVCs = append(st.res.Detail.PVCs, envelope.PVCEvidence{Namespace: p.Namespace, Name: st.x(name), For: "pod " + p.Name, Gone: true})
			st.errorf("persistentvolumeclaim %s used by pod %s not found: the pod cannot start until it exists", key, p.Name)
		case err != nil, c.Status.Phase == corev1.ClaimBound:
			// A bound claim does not explain why the pod waits; it
			// stays unmarked so an alert naming it still gathers it.
		default:
			st.pvcs[key] = true
			st.res.Detail.PVCs = append(st.res.Detail.PVCs, st.claimEvidence(ctx, c, "pod "+p.Name))
		}
	}
}
