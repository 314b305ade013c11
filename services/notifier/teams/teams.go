// Package teams posts an Adaptive Card to a Microsoft Teams Workflows
// webhook ("When a Teams webhook request is received"). Incoming webhooks
// cannot edit, so late advice and resolutions are compact follow-ups.
package teams

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/httpx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
)

// Limits of a Teams message, from
// https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
// (see shared/design/wire-facts.md, "Microsoft Teams").
const (
	// MaxMessageBytes is the documented 28 KB per message.
	MaxMessageBytes = 28 * 1024
	// TargetBytes keeps a margin below it: the practical limit was
	// reported near 20 KB.
	TargetBytes = 20 * 1024
	// DefaultPace stays under "more than 4 requests a second per URL get
	// throttled".
	DefaultPace = 250 * time.Millisecond
)

// Config of one Teams sink.
type Config struct {
	Name string
	URL  config.Secret
	Pace time.Duration
}

// Sink posts to one Workflows webhook.
type Sink struct {
	cfg Config
	c   *httpx.Client
	ep  httpx.Endpoint
}

// New builds the sink on the shared HTTP client.
func New(cfg Config, c *httpx.Client) *Sink {
	if cfg.Pace <= 0 {
		cfg.Pace = DefaultPace
	}
	return &Sink{cfg: cfg, c: c, ep: httpx.Endpoint{Name: cfg.Name, Group: "teams", Pace: cfg.Pace}}
}

// Legacy reports whether u is a retired Office 365 connector URL rather
// than a Workflows webhook; the stage warns about it at start.
func Legacy(u config.Secret) bool {
	p, err := url.Parse(u.Reveal())
	if err != nil {
		return false
	}
	h := strings.ToLower(p.Hostname())
	path := strings.ToLower(p.Path)
	return (strings.HasSuffix(h, ".webhook.office.com") || h == "outlook.office.com" || h == "outlook.office365.com") &&
		(strings.Contains(path, "/incomingwebhook/") || strings.HasPrefix(path, "/webhook/") || strings.HasPrefix(path, "/webhookb2/"))
}

// Notify posts the card. Workflows answer 202; legacy connectors 200 with
// the body "1". Anything else is a failure.
func (s *Sink) Notify(ctx context.Context, r message.Request) (message.Result, error) {
	body, err := Encode(r.Msg, r.Kind)
	if err != nil {
		return message.Result{}, fmt.Errorf("teams %s: %w", s.cfg.Name, err)
	}
	resp, err := s.c.Do(ctx, s.ep, httpx.Request{Method: http.MethodPost, URL: s.cfg.URL, Body: body})
	if err != nil {
		return message.Result{}, fmt.Errorf("teams %s: %w", s.cfg.Name, err)
	}
	switch {
	case resp.Status == http.StatusAccepted:
	case resp.Status == http.StatusOK && strings.TrimSpace(string(resp.Body)) == "1":
	default:
		return message.Result{}, fmt.Errorf("teams %s: unexpected answer HTTP %d %q", s.cfg.Name, resp.Status,
			httpx.Scrub(message.Truncate(string(resp.Body), 100), s.cfg.URL))
	}
	return message.Result{}, nil
}

// Envelope is the Workflows message body.
type Envelope struct {
	Type        string       `json:"type"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment carries the card.
type Attachment struct {
	ContentType string `json:"contentType"`
	ContentURL  any    `json:"contentUrl"`
	Content     Card   `json:"content"`
}

// Card is an Adaptive Card (version 1.2, which every Teams client renders).
type Card struct {
	Schema  string    `json:"$schema"`
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Body    []Element `json:"body"`
	Actions []Action  `json:"actions,omitempty"`
	MSTeams *MSTeams  `json:"msteams,omitempty"`
}

// MSTeams widens the card to the chat's width.
type MSTeams struct {
	Width string `json:"width"`
}

// Element is a TextBlock or a FactSet.
type Element struct {
	Type   string `json:"type"`
	Text   string `json:"text,omitempty"`
	Wrap   bool   `json:"wrap,omitempty"`
	Size   string `json:"size,omitempty"`
	Weight string `json:"weight,omitempty"`
	Color  string `json:"color,omitempty"`
	IsSub  bool   `json:"isSubtle,omitempty"`
	Facts  []Fact `json:"facts,omitempty"`
}

// Fact is a name/value row.
type Fact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// Action is a link button.
type Action struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

// Encode builds the card and shrinks its long texts until the whole body
// is under TargetBytes.
func Encode(m *message.Message, kind message.Kind) ([]byte, error) {
	for budget := 4000; ; budget /= 2 {
		env := Build(m, kind, budget)
		b, err := json.Marshal(env)
		if err != nil {
			return nil, fmt.Errorf("encode card: %w", err)
		}
		if len(b) <= TargetBytes {
			return b, nil
		}
		if budget < 50 {
			return nil, fmt.Errorf("card is %d bytes even with every text cut short (limit %d)", len(b), TargetBytes)
		}
	}
}

// Build lays the card out; budget bounds each long text in runes.
func Build(m *message.Message, kind message.Kind, budget int) Envelope {
	var body []Element
	text := func(s string, opts ...func(*Element)) {
		if s = strings.TrimSpace(s); s == "" {
			return
		}
		e := Element{Type: "TextBlock", Text: message.Truncate(s, budget), Wrap: true}
		for _, o := range opts {
			o(&e)
		}
		body = append(body, e)
	}
	title := m.TitleFor(kind)
	color := "Attention"
	switch {
	case !m.Firing:
		color = "Good"
	case m.Color == message.ColorWarning:
		color = "Warning"
	case m.Color == message.ColorInfo:
		color = "Accent"
	}
	text(esc(title), func(e *Element) { e.Size, e.Weight, e.Color = "Large", "Bolder", color })
	text(esc(m.Context), func(e *Element) { e.IsSub = true })
	compact := !m.Firing || kind == message.KindFollowup
	if !compact {
		text(esc(cmp.Or(m.Headline, m.Summary)))
		if len(m.Fields) > 0 {
			fs := Element{Type: "FactSet"}
			for _, f := range m.Fields {
				fs.Facts = append(fs.Facts, Fact{Title: esc(f.Name), Value: message.Truncate(esc(f.Value), 200)})
			}
			body = append(body, fs)
		}
	}
	if a := m.Advice; a != nil && m.Firing {
		if a.Text != "" {
			text("**Advice**\n\n" + esc(a.Text))
		} else {
			h := "**Likely cause**"
			if a.Confidence != "" {
				h += " (confidence: " + esc(a.Confidence) + ")"
			}
			text(h + "\n\n" + esc(cmp.Or(a.LikelyCause, a.Summary)))
			if len(a.Evidence) > 0 {
				text("**Evidence (model)**\n\n- " + strings.Join(escAll(a.Evidence), "\n- "))
			}
			if len(a.Steps) > 0 {
				var st []string
				for i, x := range a.Steps {
					l := strconv.Itoa(i+1) + ". "
					if x.Risky {
						l += "⚠ `" + esc(x.Command) + "` (changes the cluster)"
					} else {
						l += "`" + esc(x.Command) + "`"
					}
					st = append(st, l)
				}
				text("**Next steps**\n\n" + strings.Join(st, "\n"))
			}
		}
		if a.Truncated {
			text("_the model's answer was cut at its token limit_")
		}
	} else if m.AdviceNote != "" && !compact {
		text("_"+esc(m.AdviceNote)+"_", func(e *Element) { e.IsSub = true })
	}
	if !compact && len(m.Evidence) > 0 {
		text("**Evidence**\n\n- " + strings.Join(escAll(m.Evidence), "\n- "))
	}
	if len(m.Items) > 1 || m.More > 0 {
		text("**Alerts:** " + message.List(escAll(m.Items), ", ", message.MaxItems, min(1000, budget-20), m.More))
	}
	foot := "trace " + m.ID
	if m.Advice != nil && m.Advice.Footer != "" && m.Firing {
		foot = esc(m.Advice.Footer) + " · " + foot
	}
	text(foot, func(e *Element) { e.IsSub, e.Size = true, "Small" })
	card := Card{
		Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard", Version: "1.2",
		Body: body, MSTeams: &MSTeams{Width: "Full"},
	}
	for _, l := range m.Links {
		card.Actions = append(card.Actions, Action{Type: "Action.OpenUrl", Title: l.Text, URL: l.URL})
	}
	return Envelope{Type: "message", Attachments: []Attachment{{
		ContentType: "application/vnd.microsoft.card.adaptive", ContentURL: nil, Content: card,
	}}}
}

// atTag matches what Teams would read as a mention entity tag.
var atTag = regexp.MustCompile(`(?i)<(\s*/?\s*at\b)`)

// esc keeps untrusted text from forming <at>…</at> mention entities (the
// "<" becomes a full-width "＜", which reads the same) and escapes the
// markdown subset TextBlocks render, so a log line cannot restyle the card
// or hide a link.
func esc(s string) string {
	s = atTag.ReplaceAllString(s, "＜$1")
	return mdEscaper.Replace(s)
}

var mdEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "`", "ˋ")

func escAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = esc(s)
	}
	return out
}
