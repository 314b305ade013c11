package enricher

import (
	"fmt"
	"strings"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// accessModes abbreviates access modes as `kubectl get pvc` does.
func accessModes(modes []string) string {
	short := map[string]string{"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
	out := make([]string, len(modes))
	for i, m := range modes {
		out[i] = m
		if s, ok := short[m]; ok {
			out[i] = s
		}
	}
	return strings.Join(out, ",")
}

func expandable(c *envelope.PVCEvidence) string {
	switch {
	case c.Expandable == nil:
		return ""
	case *c.Expandable:
		return "expandable"
	}
	return "not expandable"
}

func renderPVC(b *strings.Builder, c *envelope.PVCEvidence, now time.Time) {
	fmt.Fprintf(b, "PVC %s/%s", c.Namespace, c.Name)
	if c.For != "" {
		fmt.Fprintf(b, " (of Pending %s)", c.For)
	}
	switch {
	case c.Gone:
		b.WriteString(": not found\n")
		return
	case c.Phase == "":
		b.WriteString(": could not be read\n")
	default:
		fmt.Fprintf(b, ": %s", c.Phase)
		if c.Terminating {
			b.WriteString(" (Terminating)")
		}
		if c.Capacity != "" {
			fmt.Fprintf(b, ", capacity %s", c.Capacity)
		}
		if c.Requested != "" && c.Requested != c.Capacity {
			fmt.Fprintf(b, ", requested %s", c.Requested)
		}
		if c.StorageClass != "" {
			fmt.Fprintf(b, ", storage class %s", c.StorageClass)
			if e := expandable(c); e != "" {
				fmt.Fprintf(b, " (%s)", e)
			}
		}
		if len(c.AccessModes) > 0 {
			fmt.Fprintf(b, ", %s", accessModes(c.AccessModes))
		}
		if c.VolumeMode != "" {
			fmt.Fprintf(b, ", %s", c.VolumeMode)
		}
		if c.Volume != "" {
			fmt.Fprintf(b, ", volume %s", c.Volume)
		}
		b.WriteByte('\n')
	}
	if c.SelectedNode != "" {
		fmt.Fprintf(b, "  Selected node: %s\n", c.SelectedNode)
	}
	for _, cond := range c.Conditions {
		fmt.Fprintf(b, "  Condition %s=%s %s: %s\n", cond.Type, cond.Status, cond.Reason, oneLine(cond.Message))
	}
	renderEvents(b, c.Events, now)
	switch {
	case c.For != "":
	case c.UsersUnknown:
		b.WriteString("  Used by: unknown (pods could not be listed)\n")
	case c.UsedByCount == 0:
		b.WriteString("  Used by: no pod\n")
	default:
		fmt.Fprintf(b, "  Used by %d pod(s): %s", c.UsedByCount, summarise(c.UsedBy, 10))
		if more := c.UsedByCount - len(c.UsedBy); more > 0 {
			fmt.Fprintf(b, ", +%d more", more)
		}
		b.WriteByte('\n')
	}
}

// podNames strips the "(status)" of UsedBy entries.
func podNames(usedBy []string) []string {
	out := make([]string, len(usedBy))
	for i, u := range usedBy {
		out[i], _, _ = strings.Cut(u, " (")
	}
	return out
}

// newestEventMessage prefers the newest warning: it says what is wrong.
func newestEventMessage(evs []envelope.EventEvidence) string {
	for _, e := range evs {
		if e.Type == "Warning" {
			return oneLine(e.Message)
		}
	}
	if len(evs) > 0 {
		return oneLine(evs[0].Message)
	}
	return ""
}

// warningQuotes appends the warning events of an object as key evidence,
// "Reason: message".
func warningQuotes(key []string, evs []envelope.EventEvidence) []string {
	for _, e := range evs {
		if e.Type == "Warning" {
			key = append(key, e.Reason+": "+oneLine(e.Message))
		}
	}
	return key
}

// pvcHeadline is the finding for a claim an alert names, and its quotes.
func pvcHeadline(c *envelope.PVCEvidence) (string, []string) {
	key := warningQuotes(nil, c.Events)
	for _, cond := range c.Conditions {
		if cond.Status == "True" && cond.Message != "" {
			key = append(key, cond.Type+": "+oneLine(cond.Message))
		}
	}
	name := "PVC " + c.Namespace + "/" + c.Name
	switch {
	case c.Gone:
		return name + " no longer exists", key
	case c.Phase == "":
		// Unreadable (forbidden, timeout): who mounts it still helps.
		return name + " (could not be read)" + usersClause(c), key
	case c.Phase == "Pending":
		if m := newestEventMessage(c.Events); m != "" {
			return name + " is Pending: " + m, key
		}
		return name + " is Pending (no events)", key
	case c.Phase == "Lost":
		return fmt.Sprintf("%s is Lost: its volume %s is gone", name, c.Volume), key
	}
	var desc []string
	size := c.Capacity
	if size == "" {
		size = c.Requested
	} else if c.Requested != "" && c.Requested != c.Capacity {
		size += ", " + c.Requested + " requested"
	}
	if size != "" {
		desc = append(desc, size)
	}
	if c.StorageClass != "" {
		desc = append(desc, "storage class "+c.StorageClass)
	}
	if e := expandable(c); e != "" {
		desc = append(desc, e)
	}
	h := name
	if len(desc) > 0 {
		h += " (" + strings.Join(desc, ", ") + ")"
	}
	if c.Terminating {
		h += " is Terminating and"
	}
	h += usersClause(c)
	for _, cond := range c.Conditions {
		if cond.Status == "True" && (cond.Type == "Resizing" || cond.Type == "FileSystemResizePending" || strings.HasSuffix(cond.Type, "ResizeError")) {
			h += "; " + cond.Type
			if cond.Message != "" {
				h += ": " + oneLine(cond.Message)
			}
		}
	}
	return h, key
}

// usersClause says which pods mount the claim, or nothing when unknown.
func usersClause(c *envelope.PVCEvidence) string {
	names := podNames(c.UsedBy)
	switch {
	case c.UsersUnknown:
		return ""
	case c.UsedByCount == 0:
		return " is not mounted by any pod"
	case c.UsedByCount == 1 && len(names) == 1:
		return " is used by pod " + names[0]
	}
	s := fmt.Sprintf(" is used by %d pods: %s", c.UsedByCount, strings.Join(names[:min(3, len(names))], ", "))
	if c.UsedByCount > 3 {
		s += fmt.Sprintf(" and %d more", c.UsedByCount-3)
	}
	return s
}

// pvcPendingLine explains a Pending pod's claim that is not Bound.
func pvcPendingLine(c *envelope.PVCEvidence) string {
	name := "PVC " + c.Namespace + "/" + c.Name
	if c.Gone {
		return fmt.Sprintf("%s used by %s does not exist", name, c.For)
	}
	s := fmt.Sprintf("%s used by %s is %s", name, c.For, c.Phase)
	if m := newestEventMessage(c.Events); m != "" {
		s += ": " + m
	}
	return s
}

func renderHPA(b *strings.Builder, h *envelope.HPAEvidence, now time.Time) {
	fmt.Fprintf(b, "HPA %s/%s", h.Namespace, h.Name)
	if h.Gone {
		b.WriteString(": not found\n")
		return
	}
	fmt.Fprintf(b, " -> %s: %d current, %d desired replicas (min %d, max %d)", h.Target, h.CurrentReplicas, h.DesiredReplicas, h.MinReplicas, h.MaxReplicas)
	if h.LastScale != nil {
		fmt.Fprintf(b, ", last scaled %s", ago(h.LastScale, now))
	}
	b.WriteByte('\n')
	if h.TargetGone {
		fmt.Fprintf(b, "  Scale target %s: not found\n", h.Target)
	}
	for _, m := range h.Metrics {
		fmt.Fprintf(b, "  Metric %s: %s (target %s)\n", m.Name, orUnknown(m.Current), m.Target)
	}
	var conds []string
	for _, c := range h.Conditions {
		s := c.Type + "=" + c.Status
		if c.Reason != "" {
			s += " (" + c.Reason
			if hpaConditionBad(c) && c.Message != "" {
				s += ": " + oneLine(c.Message)
			}
			s += ")"
		}
		conds = append(conds, s)
	}
	if len(conds) > 0 {
		fmt.Fprintf(b, "  Conditions: %s\n", strings.Join(conds, "; "))
	}
	renderEvents(b, h.Events, now)
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

// hpaConditionBad: AbleToScale and ScalingActive should be True,
// ScalingLimited False.
func hpaConditionBad(c envelope.ConditionEvidence) bool {
	if c.Type == "ScalingLimited" {
		return c.Status == "True"
	}
	return c.Status != "True"
}

// hpaHeadline is the finding for an autoscaler an alert names, and its
// quotes: why it cannot scale, whether it is at a bound, its metrics.
func hpaHeadline(h *envelope.HPAEvidence) (string, []string) {
	var key []string
	name := "HPA " + h.Namespace + "/" + h.Name
	if h.Gone {
		return name + " no longer exists", key
	}
	var limited, blocked *envelope.ConditionEvidence
	for i := range h.Conditions {
		c := &h.Conditions[i]
		if !hpaConditionBad(*c) {
			continue
		}
		if c.Message != "" {
			key = append(key, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, oneLine(c.Message)))
		}
		if c.Type == "ScalingLimited" {
			limited = c
		} else if blocked == nil {
			blocked = c
		}
	}
	key = warningQuotes(key, h.Events)
	var metrics []string
	for _, m := range h.Metrics {
		metrics = append(metrics, fmt.Sprintf("%s %s of target %s", m.Name, orUnknown(m.Current), m.Target))
	}
	tail := ""
	if len(metrics) > 0 {
		tail = "; " + strings.Join(metrics[:min(2, len(metrics))], ", ")
	}
	lim := ""
	if limited != nil {
		lim = fmt.Sprintf(" (ScalingLimited: %s)", limited.Reason)
	}
	switch {
	case h.TargetGone:
		return fmt.Sprintf("%s scales %s, which does not exist", name, h.Target), key
	case blocked != nil:
		s := fmt.Sprintf("%s cannot scale (%s=%s %s)", name, blocked.Type, blocked.Status, blocked.Reason)
		if blocked.Message != "" {
			s += ": " + oneLine(blocked.Message)
		}
		return s, key
	case h.MaxReplicas > 0 && (h.CurrentReplicas >= h.MaxReplicas || (limited != nil && limited.Reason == "TooManyReplicas")):
		return fmt.Sprintf("%s is at its maximum of %d replicas%s%s", name, h.MaxReplicas, lim, tail), key
	case h.DesiredReplicas != h.CurrentReplicas:
		return fmt.Sprintf("%s has %d replicas but wants %d (min %d, max %d)%s", name, h.CurrentReplicas, h.DesiredReplicas, h.MinReplicas, h.MaxReplicas, tail), key
	case limited != nil && limited.Reason == "TooFewReplicas":
		return fmt.Sprintf("%s is at its minimum of %d replicas%s%s", name, h.MinReplicas, lim, tail), key
	}
	return fmt.Sprintf("%s has %d replicas (min %d, max %d)%s", name, h.CurrentReplicas, h.MinReplicas, h.MaxReplicas, tail), key
}
