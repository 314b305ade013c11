package enricher

import (
	"context"
	"errors"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// hpa gathers an autoscaler the alerts name (autoscaling/v2: its metrics
// against their targets and the conditions that say why it does not
// scale), its events, and its scale target as a workload with its pods.
func (st *gather) hpa(ctx context.Context, r objRef) {
	h, err := call(ctx, st, needGetHPA, r.namespace, "get horizontalpodautoscaler "+r.String(), func(ctx context.Context) (*autoscalingv2.HorizontalPodAutoscaler, error) {
		return st.g.kc.AutoscalingV2().HorizontalPodAutoscalers(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
	})
	if errors.Is(err, errNotFound) {
		st.res.Detail.HPAs = append(st.res.Detail.HPAs, envelope.HPAEvidence{Namespace: r.namespace, Name: st.x(r.name), Gone: true})
		st.errorf("horizontalpodautoscaler %s not found: it was deleted before we looked", r)
		return
	}
	if err != nil {
		return
	}
	ref := h.Spec.ScaleTargetRef
	he := envelope.HPAEvidence{
		Namespace: h.Namespace, Name: h.Name, Target: st.x(ref.Kind + "/" + ref.Name),
		MinReplicas: ptrInt(h.Spec.MinReplicas), MaxReplicas: h.Spec.MaxReplicas,
		CurrentReplicas: h.Status.CurrentReplicas, DesiredReplicas: h.Status.DesiredReplicas,
		LastScale: tp(ptrTime(h.Status.LastScaleTime)), Metrics: st.hpaMetrics(h),
		Conditions: conditions(h.Status.Conditions, func(c autoscalingv2.HorizontalPodAutoscalerCondition) envelope.ConditionEvidence {
			return envelope.ConditionEvidence{Type: string(c.Type), Status: string(c.Status), Reason: st.x(c.Reason), Message: st.x(c.Message)}
		}),
	}
	he.Events = st.events(ctx, h.Namespace, "HorizontalPodAutoscaler", h.Name, string(h.UID))
	// Only the built-in workloads are read; a custom scale target (an
	// Argo Rollout) would need RBAC the enricher does not ask for.
	gv, _ := schema.ParseGroupVersion(ref.APIVersion)
	switch ref.Kind {
	case "Deployment", "StatefulSet", "ReplicaSet":
		if gv.Group == "apps" || ref.APIVersion == "" {
			w := workloadRef{ref.Kind, h.Namespace, ref.Name}
			st.workloadByLabel(ctx, w)
			he.TargetGone = st.missing[w.key()]
		}
	}
	st.res.Detail.HPAs = append(st.res.Detail.HPAs, he)
}

// hpaMetrics pairs each metric of the spec with its current value in the
// status, matched by type and name (the status need not keep the order).
func (st *gather) hpaMetrics(h *autoscalingv2.HorizontalPodAutoscaler) []envelope.HPAMetricEvidence {
	current := map[string]autoscalingv2.MetricValueStatus{}
	for _, m := range h.Status.CurrentMetrics {
		if k, v, ok := statusMetric(m); ok {
			current[k] = v
		}
	}
	out := make([]envelope.HPAMetricEvidence, 0, len(h.Spec.Metrics))
	for _, m := range h.Spec.Metrics {
		k, name, target, ok := specMetric(m)
		if !ok {
			continue
		}
		me := envelope.HPAMetricEvidence{Name: st.x(name), Target: formatTarget(target)}
		if v, ok := current[k]; ok {
			me.Current = formatCurrent(v, target.Type)
		}
		out = append(out, me)
	}
	return out
}

func specMetric(m autoscalingv2.MetricSpec) (key, name string, target autoscalingv2.MetricTarget, ok bool) {
	switch {
	case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil:
		return "Resource/" + string(m.Resource.Name), string(m.Resource.Name), m.Resource.Target, true
	case m.Type == autoscalingv2.ContainerResourceMetricSourceType && m.ContainerResource != nil:
		c := m.ContainerResource
		return "ContainerResource/" + c.Container + "/" + string(c.Name), fmt.Sprintf("%s of container %s", c.Name, c.Container), c.Target, true
	case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods != nil:
		return "Pods/" + m.Pods.Metric.Name, m.Pods.Metric.Name, m.Pods.Target, true
	case m.Type == autoscalingv2.ObjectMetricSourceType && m.Object != nil:
		o := m.Object
		obj := o.DescribedObject.Kind + "/" + o.DescribedObject.Name
		return "Object/" + obj + "/" + o.Metric.Name, o.Metric.Name + " of " + obj, o.Target, true
	case m.Type == autoscalingv2.ExternalMetricSourceType && m.External != nil:
		return "External/" + m.External.Metric.Name, m.External.Metric.Name, m.External.Target, true
	}
	return "", "", autoscalingv2.MetricTarget{}, false
}

func statusMetric(m autoscalingv2.MetricStatus) (string, autoscalingv2.MetricValueStatus, bool) {
	switch {
	case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil:
		return "Resource/" + string(m.Resource.Name), m.Resource.Current, true
	case m.Type == autoscalingv2.ContainerResourceMetricSourceType && m.ContainerResource != nil:
		return "ContainerResource/" + m.ContainerResource.Container + "/" + string(m.ContainerResource.Name), m.ContainerResource.Current, true
	case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods != nil:
		return "Pods/" + m.Pods.Metric.Name, m.Pods.Current, true
	case m.Type == autoscalingv2.ObjectMetricSourceType && m.Object != nil:
		o := m.Object
		return "Object/" + o.DescribedObject.Kind + "/" + o.DescribedObject.Name + "/" + o.Metric.Name, o.Current, true
	case m.Type == autoscalingv2.ExternalMetricSourceType && m.External != nil:
		return "External/" + m.External.Metric.Name, m.External.Current, true
	}
	return "", autoscalingv2.MetricValueStatus{}, false
}

func formatTarget(t autoscalingv2.MetricTarget) string {
	switch {
	case t.Type == autoscalingv2.UtilizationMetricType && t.AverageUtilization != nil:
		return fmt.Sprintf("%d%%", *t.AverageUtilization)
	case t.Type == autoscalingv2.AverageValueMetricType && t.AverageValue != nil:
		return qty(t.AverageValue) + " average"
	case t.Type == autoscalingv2.ValueMetricType && t.Value != nil:
		return qty(t.Value)
	}
	return ""
}

func formatCurrent(v autoscalingv2.MetricValueStatus, typ autoscalingv2.MetricTargetType) string {
	switch {
	case typ == autoscalingv2.UtilizationMetricType && v.AverageUtilization != nil:
		return fmt.Sprintf("%d%%", *v.AverageUtilization)
	case v.AverageValue != nil:
		return qty(v.AverageValue) + " average"
	case v.Value != nil:
		return qty(v.Value)
	case v.AverageUtilization != nil:
		return fmt.Sprintf("%d%%", *v.AverageUtilization)
	}
	return ""
}

func qty(q *resource.Quantity) string { return q.String() }
