// Package discord posts to a Discord execute-webhook as one embed, keeps the
// message id (?wait=true) and edits that message in place when advice
// arrives late, alerts join the group, or the group resolves.
package discord

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/httpx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/retry"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
)

// Limits of a Discord message, from
// https://discord.com/developers/docs/resources/message#embed-object-embed-limits
// (see shared/design/wire-facts.md, "Discord"). Breaking one gives 400
// (code 50035), so nothing is ever sent above them.
const (
	MaxContent         = 2000
	MaxEmbeds          = 10
	MaxTitle           = 256
	MaxDescription     = 4096
	MaxFields          = 25
	MaxFieldName       = 256
	MaxFieldValue      = 1024
	MaxFooter          = 2048
	MaxAuthorName      = 256
	MaxEmbedTotal      = 6000
	totalSafetyMargin  = 50
	maxEvidenceLines   = 8
	maxSteps           = 8
	maxSectionRunes    = 700
	unknownMessageCode = 10008 // Discord JSON error code: the message was deleted
)

// Group is the httpx endpoint group of every Discord webhook: Discord's
// global rate limit pauses all of them together.
const Group = "discord"

// Config of one Discord sink.
type Config struct {
	Name string
	URL  config.Secret
	// Pace is a minimum spacing between requests; Discord's own
	// X-RateLimit headers pace it in any case.
	Pace time.Duration
}

// Sink posts and edits Discord messages.
type Sink struct {
	cfg Config
	c   *httpx.Client
	ep  httpx.Endpoint
}

// New builds the sink on the shared HTTP client.
func New(cfg Config, c *httpx.Client) *Sink {
	return &Sink{cfg: cfg, c: c, ep: httpx.Endpoint{Name: cfg.Name, Group: Group, Pace: cfg.Pace}}
}

// Payload is the execute-webhook body.
type Payload struct {
	Content         string          `json:"content,omitempty"`
	Embeds          []Embed         `json:"embeds"`
	AllowedMentions AllowedMentions `json:"allowed_mentions"`
}

// AllowedMentions with an empty Parse silences @everyone, @here, roles and
// users whatever the text says.
type AllowedMentions struct {
	Parse []string `json:"parse"`
}

// Embed is one rich block.
type Embed struct {
	Title       string  `json:"title,omitempty"`
	Description string  `json:"description,omitempty"`
	Color       int     `json:"color,omitempty"`
	Timestamp   string  `json:"timestamp,omitempty"`
	Fields      []Field `json:"fields,omitempty"`
	Footer      *Footer `json:"footer,omitempty"`
}

// Field of an embed.
type Field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
}

// Footer of an embed.
type Footer struct {
	Text string `json:"text"`
}

type messageAnswer struct {
	ID string `json:"id"`
}

type errorAnswer struct {
	Code int `json:"code"`
}

// Notify posts the message, or edits the incident's living message when
// the request names one.
func (s *Sink) Notify(ctx context.Context, r message.Request) (message.Result, error) {
	p := Build(r.Msg, r.Env.ReceivedAt)
	body, err := json.Marshal(p)
	if err != nil {
		return message.Result{}, fmt.Errorf("discord %s: encode: %w", s.cfg.Name, err)
	}
	if r.MessageID != "" {
		res, err := s.edit(ctx, r.MessageID, body)
		if !errors.Is(err, errMessageGone) {
			return res, err
		}
		// Someone deleted the message: post a new one.
	}
	u, err := s.postURL()
	if err != nil {
		return message.Result{}, err
	}
	resp, err := s.c.Do(ctx, s.ep, httpx.Request{Method: http.MethodPost, URL: u, Body: body})
	if err != nil {
		return message.Result{}, fmt.Errorf("discord %s: post: %w", s.cfg.Name, err)
	}
	var a messageAnswer
	if json.Unmarshal(resp.Body, &a) != nil || a.ID == "" {
		// Posted (2xx) but no id: do not retry (that would post twice);
		// the next update posts a new message instead of editing.
		return message.Result{}, nil
	}
	return message.Result{MessageID: a.ID}, nil
}

var errMessageGone = errors.New("discord message was deleted")

func (s *Sink) edit(ctx context.Context, id string, body []byte) (message.Result, error) {
	u, err := s.editURL(id)
	if err != nil {
		return message.Result{}, err
	}
	resp, err := s.c.Do(ctx, s.ep, httpx.Request{Method: http.MethodPatch, URL: u, Body: body, Pass: unknownMessage})
	if err != nil {
		return message.Result{}, fmt.Errorf("discord %s: edit: %w", s.cfg.Name, err)
	}
	if resp.Status == http.StatusNotFound {
		return message.Result{}, errMessageGone
	}
	return message.Result{MessageID: id, Edited: true}, nil
}

// unknownMessage picks, among the 404s of an edit, Discord's "Unknown
// Message" (someone deleted it). Any other 404 (Unknown Webhook, or no
// JSON) means the webhook itself is gone, and httpx marks it dead.
func unknownMessage(status int, body []byte) bool {
	var e errorAnswer
	return status == http.StatusNotFound && json.Unmarshal(body, &e) == nil && e.Code == unknownMessageCode
}

func (s *Sink) postURL() (config.Secret, error) {
	u, err := url.Parse(s.cfg.URL.Reveal())
	if err != nil {
		return "", retry.Permanent(fmt.Errorf("discord %s: webhook URL does not parse", s.cfg.Name))
	}
	q := u.Query()
	q.Set("wait", "true")
	u.RawQuery = q.Encode()
	return config.Secret(u.String()), nil
}

func (s *Sink) editURL(id string) (config.Secret, error) {
	u, err := url.Parse(s.cfg.URL.Reveal())
	if err != nil {
		return "", retry.Permanent(fmt.Errorf("discord %s: webhook URL does not parse", s.cfg.Name))
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/messages/" + url.PathEscape(id)
	q := u.Query()
	q.Del("wait")
	u.RawQuery = q.Encode()
	return config.Secret(u.String()), nil
}

// Build lays the message out as one embed within every Discord limit.
func Build(m *message.Message, at time.Time) Payload {
	e := Embed{Title: message.Truncate(esc(m.Title()), MaxTitle), Color: m.Color}
	if !at.IsZero() {
		e.Timestamp = at.UTC().Format(time.RFC3339)
	}
	var sec []string
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			sec = append(sec, message.Truncate(s, maxSectionRunes))
		}
	}
	add(esc(m.Context))
	if len(m.Items) > 1 || m.More > 0 {
		escaped := make([]string, len(m.Items))
		for i, it := range m.Items {
			escaped[i] = esc(it)
		}
		add("**Alerts:** " + message.List(escaped, ", ", message.MaxItems, 900, m.More))
	}
	if m.Firing {
		add(esc(m.Headline))
		if m.Headline == "" {
			add(esc(m.Summary))
		}
		if a := m.Advice; a != nil {
			if a.Text != "" {
				add("**Advice**\n" + esc(a.Text))
			} else {
				h := "**Likely cause**"
				if a.Confidence != "" {
					h += " (confidence: " + esc(a.Confidence) + ")"
				}
				add(h + "\n" + esc(cmp.Or(a.LikelyCause, a.Summary)))
			}
		} else if m.AdviceNote != "" {
			add("_" + esc(m.AdviceNote) + "_")
		}
		var ev []string
		if m.Advice != nil {
			for _, x := range m.Advice.Evidence {
				ev = append(ev, "• "+esc(x))
			}
		}
		for _, x := range m.Evidence {
			ev = append(ev, "• "+code(x))
		}
		if len(ev) > maxEvidenceLines {
			ev = append(ev[:maxEvidenceLines], "• +"+strconv.Itoa(len(ev)-maxEvidenceLines)+" more")
		}
		if len(ev) > 0 {
			add("**Evidence**\n" + strings.Join(ev, "\n"))
		}
		if a := m.Advice; a != nil && len(a.Steps) > 0 {
			var st []string
			for i, x := range a.Steps {
				if i == maxSteps {
					st = append(st, "+"+strconv.Itoa(len(a.Steps)-maxSteps)+" more")
					break
				}
				l := strconv.Itoa(i+1) + ". "
				if x.Risky {
					l += "⚠ " + code(x.Command) + " (changes the cluster)"
				} else {
					l += code(x.Command)
				}
				st = append(st, l)
			}
			add("**Next steps**\n" + strings.Join(st, "\n"))
		}
		if m.Advice != nil && m.Advice.Truncated {
			add("_the model's answer was cut at its token limit_")
		}
	}
	var links []string
	for _, l := range m.Links {
		links = append(links, "["+l.Text+"]("+linkURL(l.URL)+")")
	}
	add(strings.Join(links, " · "))

	for _, f := range m.Fields {
		if len(e.Fields) == MaxFields {
			break
		}
		if !m.Firing && f.Name != "Namespace" && f.Name != "Workload" {
			continue
		}
		e.Fields = append(e.Fields, Field{
			Name: message.Truncate(esc(f.Name), MaxFieldName), Value: message.Truncate(esc(f.Value), MaxFieldValue), Inline: true,
		})
	}
	var foot []string
	if m.Advice != nil && m.Advice.Footer != "" {
		foot = append(foot, m.Advice.Footer)
	}
	foot = append(foot, "trace "+m.ID)
	e.Footer = &Footer{Text: message.Truncate(esc(strings.Join(foot, " · ")), MaxFooter)}

	// The description takes what the other parts leave of the 6000 total.
	others := message.Runes(e.Title) + message.Runes(e.Footer.Text)
	for _, f := range e.Fields {
		others += message.Runes(f.Name) + message.Runes(f.Value)
	}
	room := min(MaxDescription, MaxEmbedTotal-others-totalSafetyMargin)
	e.Description = message.Truncate(strings.Join(sec, "\n\n"), room)
	return Payload{Embeds: []Embed{e}, AllowedMentions: AllowedMentions{Parse: []string{}}}
}

// EmbedRunes counts an embed's text the way Discord's 6000 limit does.
func EmbedRunes(e Embed) int {
	n := message.Runes(e.Title) + message.Runes(e.Description)
	for _, f := range e.Fields {
		n += message.Runes(f.Name) + message.Runes(f.Value)
	}
	if e.Footer != nil {
		n += message.Runes(e.Footer.Text)
	}
	return n
}

var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "*", `\*`, "_", `\_`, "~", `\~`, "`", "\\`", "|", `\|`, ">", `\>`, "[", `\[`, "]", `\]`, "#", `\#`,
)

// esc makes untrusted text inert: markdown is escaped (a log line cannot
// turn into a masked phishing link or a heading) and mentions are broken
// with a zero-width space, on top of allowed_mentions, so even a client
// that ignored allowed_mentions would ping nobody.
func esc(s string) string { return neutralize(mdEscaper.Replace(s)) }

var mentionBreaker = strings.NewReplacer(
	"@everyone", "@\u200beveryone", "@here", "@\u200bhere", "<@", "<@\u200b",
)

func neutralize(s string) string { return mentionBreaker.Replace(s) }

// code shows untrusted text verbatim in an inline code span.
func code(s string) string {
	s = strings.ReplaceAll(s, "`", "ˋ")
	return "`" + neutralize(s) + "`"
}

// linkURL keeps a URL from closing the markdown link early, and from
// carrying a mention (a runbook_url annotation is untrusted text too).
func linkURL(u string) string { return linkEscaper.Replace(u) }

var linkEscaper = strings.NewReplacer(")", "%29", "(", "%28", " ", "%20",
	"@everyone", "%40everyone", "@here", "%40here", "<", "%3C", ">", "%3E")
