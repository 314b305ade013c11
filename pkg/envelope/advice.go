package envelope

import "time"

// Advice statuses.
const (
	AdviceOK          = "ok"
	AdviceUnavailable = "unavailable"
	AdviceSkipped     = "skipped"
)

// Advice is the advisor's section.
type Advice struct {
	Status string `json:"status"`
	// Reason says why advice is missing, e.g. "deadline" or
	// "model mistral not found on http://...: run `ollama pull mistral`".
	Reason string `json:"reason,omitempty"`

	Model    string        `json:"model,omitempty"`
	Backend  string        `json:"backend,omitempty"`
	Duration time.Duration `json:"durationNs,omitempty"`
	Cached   bool          `json:"cached,omitempty"`
	// Late marks advice published after the notification went out without it.
	Late bool `json:"late,omitempty"`
	// Truncated is set when the model stopped at its token cap.
	Truncated bool `json:"truncated,omitempty"`

	// Text is the model's answer as plain text; always set when Status is ok.
	Text string `json:"text,omitempty"`
	// Structured is the validated JSON answer, nil when the model did not
	// produce one (Text is then the raw answer, marked unstructured).
	Structured *StructuredAdvice `json:"structured,omitempty"`
	// Unstructured is true when Text is the model's raw answer because it
	// did not follow the schema even after one repair request: show it as
	// the model's words, not as checked advice.
	Unstructured bool `json:"unstructured,omitempty"`
	// Repaired is true when the structured answer came from the one repair
	// request that follows an answer breaking the schema.
	Repaired bool `json:"repaired,omitempty"`

	// PromptVersion names the prompt the advice was written for; it is part
	// of the cache key.
	PromptVersion string `json:"promptVersion,omitempty"`
	// ProblemKey identifies the problem (not the pod, not the repeat) the
	// advice was asked for: notifications with the same key share advice.
	ProblemKey string `json:"problemKey,omitempty"`
	// PromptTokens is the advisor's estimate of the prompt's size;
	// OutputTokens what the server reported for the answer.
	PromptTokens int `json:"promptTokens,omitempty"`
	OutputTokens int `json:"outputTokens,omitempty"`
	// Notes are short remarks for a person about how the advice was made
	// ("evidence was cut to fit the model's context", "2 quotes not found
	// in the data were dropped").
	Notes []string `json:"notes,omitempty"`
}

// StructuredAdvice is the JSON shape the model is asked to answer in.
type StructuredAdvice struct {
	Summary     string     `json:"summary"`
	LikelyCause string     `json:"likely_cause"`
	Confidence  string     `json:"confidence"`
	Evidence    []string   `json:"evidence"`
	NextSteps   []NextStep `json:"next_steps"`
}

// NextStep is one suggested command.
type NextStep struct {
	Command string `json:"command"`
	Why     string `json:"why"`
	Risky   bool   `json:"risky"`
}

// Available reports whether there is advice to show.
func (a *Advice) Available() bool { return a != nil && a.Status == AdviceOK }
