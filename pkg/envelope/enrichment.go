package envelope

import "time"

// Enrichment is the enricher's section: the Kubernetes evidence for the
// notification, already redacted.
type Enrichment struct {
	// ClusterAccess is false when the enricher could not reach any cluster;
	// Unavailable then says why ("no cluster access: ...").
	ClusterAccess bool   `json:"clusterAccess"`
	Unavailable   string `json:"unavailable,omitempty"`

	// Text is a compact, describe-like rendering of the evidence, sized for
	// the model's prompt and the chat message.
	Text string `json:"text,omitempty"`

	// Headline is one line for the chat message, e.g. "container api
	// restarted 7 times; last exit 1 (Error) 42s ago".
	Headline string `json:"headline,omitempty"`

	// KeyEvidence are the few quotes worth showing in chat (a fatal log line,
	// a termination reason).
	KeyEvidence []string `json:"keyEvidence,omitempty"`

	// Redactions counts what the redactor removed, by kind; never values.
	Redactions map[string]int `json:"redactions,omitempty"`

	// Errors are per-lookup problems (pod gone, forbidden, timeout).
	Errors []string `json:"errors,omitempty"`

	// Partial is true when transient errors left some evidence out.
	Partial bool `json:"partial,omitempty"`

	// Detail is the structured evidence (nil without cluster access).
	Detail *EnrichmentDetail `json:"detail,omitempty"`
}

// The structured evidence below mirrors what `kubectl describe`, `kubectl
// get events`, `kubectl logs --previous` and the owner's rollout history
// show. Every string in it came from the cluster or the alert and has been
// redacted. All slices are bounded by the enricher's limits and its byte
// budget.

// EnrichmentDetail holds the structured evidence; it sits beside Text so a
// consumer can choose between the rendering and the fields.
type EnrichmentDetail struct {
	Pods      []PodEvidence      `json:"pods,omitempty"`
	Workloads []WorkloadEvidence `json:"workloads,omitempty"`
	Nodes     []NodeEvidence     `json:"nodes,omitempty"`
	// PVCs are the PersistentVolumeClaims the alerts name, and the unbound
	// claims of Pending pods.
	PVCs []PVCEvidence `json:"pvcs,omitempty"`
	// MorePVCs names the alert group's claims beyond the enricher's limit,
	// which were not looked at.
	MorePVCs []string `json:"morePVCs,omitempty"`
	// HPAs are the HorizontalPodAutoscalers the alerts name.
	HPAs []HPAEvidence `json:"hpas,omitempty"`
	// MoreHPAs names the alert group's autoscalers beyond the limit.
	MoreHPAs []string `json:"moreHPAs,omitempty"`
	// APICalls is how many Kubernetes API requests the enrichment made.
	APICalls int `json:"apiCalls,omitempty"`
	// Bytes is the size of Text plus the structured evidence, after the
	// budget was applied.
	Bytes int `json:"bytes,omitempty"`
	// Trimmed lists what the byte budget left out ("logs of pod x").
	Trimmed []string `json:"trimmed,omitempty"`
}

// PodEvidence is one pod in detail.
type PodEvidence struct {
	Namespace  string              `json:"namespace"`
	Name       string              `json:"name"`
	Phase      string              `json:"phase,omitempty"`
	Reason     string              `json:"reason,omitempty"`
	Message    string              `json:"message,omitempty"`
	Node       string              `json:"node,omitempty"`
	QoS        string              `json:"qos,omitempty"`
	Owner      string              `json:"owner,omitempty"` // Kind/name of the controller
	StartedAt  *time.Time          `json:"startedAt,omitempty"`
	Conditions []ConditionEvidence `json:"conditions,omitempty"`
	Containers []ContainerEvidence `json:"containers,omitempty"`
	Events     []EventEvidence     `json:"events,omitempty"`
	Logs       []LogEvidence       `json:"logs,omitempty"`
	// Gone is set when the pod was deleted before we looked.
	Gone bool `json:"gone,omitempty"`
}

// ContainerEvidence is one container's spec and status.
type ContainerEvidence struct {
	Name         string            `json:"name"`
	Init         bool              `json:"init,omitempty"`
	Image        string            `json:"image,omitempty"`
	Ready        bool              `json:"ready"`
	RestartCount int32             `json:"restartCount"`
	State        *ContainerState   `json:"state,omitempty"`
	LastState    *ContainerState   `json:"lastState,omitempty"`
	Requests     map[string]string `json:"requests,omitempty"`
	Limits       map[string]string `json:"limits,omitempty"`
	// Env is NAME=value for literal values (redacted) and NAME=<from ...>
	// for references; secret values are never read.
	Env []string `json:"env,omitempty"`
}

// ContainerState is a running, waiting or terminated state.
type ContainerState struct {
	State      string     `json:"state"` // running | waiting | terminated
	Reason     string     `json:"reason,omitempty"`
	Message    string     `json:"message,omitempty"`
	ExitCode   *int32     `json:"exitCode,omitempty"`
	Signal     int32      `json:"signal,omitempty"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// ConditionEvidence is a pod, workload or node condition.
type ConditionEvidence struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// EventEvidence is one (deduplicated) Kubernetes event.
type EventEvidence struct {
	Object   string    `json:"object"` // Kind/name
	Type     string    `json:"type"`
	Reason   string    `json:"reason"`
	Message  string    `json:"message"`
	Count    int32     `json:"count,omitempty"`
	LastSeen time.Time `json:"lastSeen,omitzero"`
}

// LogEvidence is the tail of one container's log.
type LogEvidence struct {
	Container string `json:"container"`
	Previous  bool   `json:"previous,omitempty"`
	Text      string `json:"text"`
	Truncated bool   `json:"truncated,omitempty"`
	// Error says why the log could not be read.
	Error string `json:"error,omitempty"`
}

// WorkloadEvidence is a pod's controller chain (ReplicaSet → Deployment,
// StatefulSet, DaemonSet, Job → CronJob) or a workload named by the alert.
type WorkloadEvidence struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Parent is the owner's owner, e.g. "CronJob/nightly" for a Job.
	Parent string `json:"parent,omitempty"`
	// Revision and LastRollout are the Deployment's current revision and
	// when its current ReplicaSet was created (or the StatefulSet's
	// update revision).
	Revision    string     `json:"revision,omitempty"`
	LastRollout *time.Time `json:"lastRollout,omitempty"`
	// ImageChanges between the previous and the current revision, e.g.
	// "api: acme/api:v1.7 -> acme/api:v1.8".
	ImageChanges []string            `json:"imageChanges,omitempty"`
	Replicas     string              `json:"replicas,omitempty"` // "ready/desired", or Job "succeeded/failed"
	Images       []string            `json:"images,omitempty"`
	Conditions   []ConditionEvidence `json:"conditions,omitempty"`
	Events       []EventEvidence     `json:"events,omitempty"`
	// Pods is how many pods of this workload the notification concerns;
	// PodsShown of them are in detail, MorePods are summarised.
	Pods      int      `json:"pods,omitempty"`
	PodsShown int      `json:"podsShown,omitempty"`
	MorePods  []string `json:"morePods,omitempty"`
}

// NodeEvidence is a node's health.
type NodeEvidence struct {
	Name          string              `json:"name"`
	Conditions    []ConditionEvidence `json:"conditions,omitempty"`
	Unschedulable bool                `json:"unschedulable,omitempty"`
	Gone          bool                `json:"gone,omitempty"`
	// Events of a node that is not Ready (NodeNotReady, Rebooted, ...).
	Events []EventEvidence `json:"events,omitempty"`
}

// PVCEvidence is a PersistentVolumeClaim: what `kubectl describe pvc` shows,
// plus whether its StorageClass allows expansion (the first question for a
// filling volume) and which pods mount it.
type PVCEvidence struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// For is set when the claim was gathered because a Pending pod uses
	// it ("pod web-0"), rather than because an alert names it.
	For         string `json:"for,omitempty"`
	Phase       string `json:"phase,omitempty"` // Pending | Bound | Lost
	Terminating bool   `json:"terminating,omitempty"`
	// Requested is spec.resources.requests.storage, Capacity the size of
	// the bound volume (they differ while a resize is under way).
	Requested    string   `json:"requested,omitempty"`
	Capacity     string   `json:"capacity,omitempty"`
	StorageClass string   `json:"storageClass,omitempty"`
	AccessModes  []string `json:"accessModes,omitempty"`
	VolumeMode   string   `json:"volumeMode,omitempty"`
	Volume       string   `json:"volume,omitempty"` // bound PersistentVolume
	// SelectedNode is the volume.kubernetes.io/selected-node annotation
	// (WaitForFirstConsumer binding).
	SelectedNode string `json:"selectedNode,omitempty"`
	// Expandable is the StorageClass's allowVolumeExpansion; nil when the
	// class was not looked at or could not be read.
	Expandable *bool               `json:"expandable,omitempty"`
	Conditions []ConditionEvidence `json:"conditions,omitempty"`
	Events     []EventEvidence     `json:"events,omitempty"`
	// UsedBy are pods that mount the claim, "name (status)", least healthy
	// first; UsedByCount counts all of them. UsersUnknown is set when the
	// pods could not be listed.
	UsedBy       []string `json:"usedBy,omitempty"`
	UsedByCount  int      `json:"usedByCount,omitempty"`
	UsersUnknown bool     `json:"usersUnknown,omitempty"`
	// Gone is set when the claim does not exist.
	Gone bool `json:"gone,omitempty"`
}

// HPAEvidence is a HorizontalPodAutoscaler (autoscaling/v2): its bounds,
// replicas, metrics against their targets and conditions. Its scale
// target is gathered as a workload beside it.
type HPAEvidence struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Target is the scaleTargetRef, "Kind/name"; TargetGone is set when
	// it does not exist.
	Target          string              `json:"target,omitempty"`
	TargetGone      bool                `json:"targetGone,omitempty"`
	MinReplicas     int32               `json:"minReplicas,omitempty"`
	MaxReplicas     int32               `json:"maxReplicas,omitempty"`
	CurrentReplicas int32               `json:"currentReplicas"`
	DesiredReplicas int32               `json:"desiredReplicas"`
	Metrics         []HPAMetricEvidence `json:"metrics,omitempty"`
	Conditions      []ConditionEvidence `json:"conditions,omitempty"`
	LastScale       *time.Time          `json:"lastScale,omitempty"`
	Events          []EventEvidence     `json:"events,omitempty"`
	// Gone is set when the autoscaler does not exist.
	Gone bool `json:"gone,omitempty"`
}

// HPAMetricEvidence is one metric of an autoscaler, e.g. cpu at "182%"
// against a target of "70%".
type HPAMetricEvidence struct {
	Name    string `json:"name"`
	Current string `json:"current,omitempty"` // empty when not yet known
	Target  string `json:"target,omitempty"`
}
