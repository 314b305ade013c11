package advisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// adviceSchema is the JSON Schema of the answer. Ollama takes it as
// `format`, OpenAI-compatible servers as response_format json_schema
// (strict mode wants every property required and no others).
var adviceSchema = json.RawMessage(`{"type":"object","properties":{` +
	`"summary":{"type":"string"},` +
	`"likely_cause":{"type":"string"},` +
	`"confidence":{"type":"string","enum":["low","medium","high"]},` +
	`"evidence":{"type":"array","items":{"type":"string"}},` +
	`"next_steps":{"type":"array","items":{"type":"object","properties":{` +
	`"command":{"type":"string"},"why":{"type":"string"},"risky":{"type":"boolean"}},` +
	`"required":["command","why","risky"],"additionalProperties":false}}},` +
	`"required":["summary","likely_cause","confidence","evidence","next_steps"],"additionalProperties":false}`)

// Caps on what is kept from an answer: chat messages have limits, and a
// rambling model must not push the alert itself out of view.
const (
	maxSummary   = 600
	maxCause     = 1000
	maxEvidence  = 8
	maxQuote     = 400
	maxSteps     = 8
	maxCommand   = 300
	maxWhy       = 400
	maxPlainText = 3000
)

// destructive matches commands that change the cluster or lose data. The
// model is asked to flag them; this marks them risky whatever it says.
var destructive = regexp.MustCompile(`(?i)\b(kubectl\s+(\S+\s+)*(delete|drain|cordon|uncordon|scale|edit|apply|patch|replace|set|label|annotate|taint|exec|cp|create|run)\b|kubectl\s+rollout\s+(restart|undo)|helm\s+(uninstall|delete|rollback|upgrade|install)|rm\s+-|drop\s+(table|database)|truncate\s+table|reboot|shutdown|systemctl\s+(stop|restart|disable)|docker\s+(rm|kill|stop)|crictl\s+(rm|stop))`)

type wireAdvice struct {
	Summary     *string    `json:"summary"`
	LikelyCause *string    `json:"likely_cause"`
	Confidence  *string    `json:"confidence"`
	Evidence    []string   `json:"evidence"`
	NextSteps   []wireStep `json:"next_steps"`
}

type wireStep struct {
	Command *string `json:"command"`
	Why     string  `json:"why"`
	Risky   *bool   `json:"risky"`
}

// errNoJSON means the answer holds no JSON object at all.
var errNoJSON = errors.New("the answer is not a JSON object")

// parseAdvice validates a model's answer against the schema. data is the
// text the model was given: evidence quotes that are not in it are dropped
// (a made-up quote is worse than none at 3 a.m.).
func parseAdvice(content, data string) (*envelope.StructuredAdvice, int, error) {
	raw := extractJSON(content)
	if raw == "" {
		return nil, 0, errNoJSON
	}
	var w wireAdvice
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		return nil, 0, fmt.Errorf("the answer is not valid JSON: %w", err)
	}
	var problems []string
	str := func(name string, p *string) string {
		if p == nil || strings.TrimSpace(*p) == "" {
			problems = append(problems, name+" is missing or empty")
			return ""
		}
		return strings.TrimSpace(*p)
	}
	out := &envelope.StructuredAdvice{
		Summary:     clip(str("summary", w.Summary), maxSummary),
		LikelyCause: clip(str("likely_cause", w.LikelyCause), maxCause),
	}
	conf := strings.ToLower(str("confidence", w.Confidence))
	switch conf {
	case "low", "medium", "high":
		out.Confidence = conf
	case "":
	default:
		problems = append(problems, fmt.Sprintf("confidence is %q, want low, medium or high", conf))
	}
	if w.Evidence == nil {
		problems = append(problems, "evidence is missing (use [] when there is none)")
	}
	if w.NextSteps == nil {
		problems = append(problems, "next_steps is missing (use [] when there are none)")
	}
	for i, st := range w.NextSteps {
		if st.Command == nil || strings.TrimSpace(*st.Command) == "" {
			problems = append(problems, fmt.Sprintf("next_steps[%d].command is missing", i))
			continue
		}
		if len(out.NextSteps) == maxSteps {
			continue
		}
		cmd := strings.TrimSpace(*st.Command)
		risky := st.Risky != nil && *st.Risky
		if destructive.MatchString(cmd) {
			risky = true
		}
		out.NextSteps = append(out.NextSteps, envelope.NextStep{Command: clip(cmd, maxCommand), Why: clip(strings.TrimSpace(st.Why), maxWhy), Risky: risky})
	}
	if len(problems) > 0 {
		return nil, 0, fmt.Errorf("the answer does not follow the schema: %s", strings.Join(problems, "; "))
	}
	dropped := 0
	norm := normalizeSpace(data)
	for _, q := range w.Evidence {
		q = strings.TrimSpace(q)
		if q == "" {
			continue
		}
		if !strings.Contains(norm, normalizeSpace(strings.Trim(q, "\"'`…. "))) {
			dropped++
			continue
		}
		if len(out.Evidence) < maxEvidence {
			out.Evidence = append(out.Evidence, clip(q, maxQuote))
		}
	}
	if out.Evidence == nil {
		out.Evidence = []string{}
	}
	if out.NextSteps == nil {
		out.NextSteps = []envelope.NextStep{}
	}
	return out, dropped, nil
}

// extractJSON finds the JSON object in an answer: small models wrap it in
// code fences or a sentence even when told not to.
func extractJSON(s string) string {
	s = strings.TrimSpace(s)
	i := strings.IndexByte(s, '{')
	j := strings.LastIndexByte(s, '}')
	if i < 0 || j <= i {
		return ""
	}
	return s[i : j+1]
}

func normalizeSpace(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// renderAdvice is the plain-text form of structured advice, for sinks that
// show text only.
func renderAdvice(a *envelope.StructuredAdvice) string {
	var b strings.Builder
	b.WriteString(a.Summary)
	fmt.Fprintf(&b, "\nLikely cause: %s (confidence: %s)", a.LikelyCause, a.Confidence)
	if len(a.Evidence) > 0 {
		b.WriteString("\nEvidence:")
		for _, e := range a.Evidence {
			fmt.Fprintf(&b, "\n- %q", e)
		}
	}
	if len(a.NextSteps) > 0 {
		b.WriteString("\nNext steps:")
		for i, s := range a.NextSteps {
			fmt.Fprintf(&b, "\n%d. %s", i+1, s.Command)
			if s.Why != "" {
				b.WriteString(" — " + s.Why)
			}
			if s.Risky {
				b.WriteString(" [RISKY: changes the cluster, check first]")
			}
		}
	}
	return b.String()
}

// repairMessage asks the model, once, to fix an answer that broke the
// schema.
func repairMessage(problem error) string {
	return "Your answer could not be used: " + clip(problem.Error(), 400) +
		". Reply again with only one JSON object that follows the schema exactly " +
		"(summary, likely_cause, confidence low|medium|high, evidence as exact quotes from the data, " +
		"next_steps with command, why, risky). No prose, no code fences."
}
