package envelope

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
}
