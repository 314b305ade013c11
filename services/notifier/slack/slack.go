// Package slack posts to a Slack incoming webhook with Block Kit and a text
// fallback. Incoming webhooks return no message id, so late advice and
// resolutions are compact follow-up posts.
package slack

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/httpx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier/message"
)

// Limits of Block Kit, from https://api.slack.com/reference/block-kit/blocks
// (see shared/design/wire-facts.md, "Slack").
const (
	MaxBlocks       = 50
	MaxSectionText  = 3000
	MaxFields       = 10
	MaxFieldText    = 2000
	MaxHeaderText   = 150
	MaxContextItems = 10
	// MaxText bounds the top-level fallback text; Slack truncates
	// messages above 40,000 characters, notifications show far less.
	MaxText = 3000
)

// DefaultPace is Slack's documented rate for incoming webhooks: about one
// message per second per webhook.
const DefaultPace = time.Second

// Config of one Slack sink.
type Config struct {
	Name string
	URL  config.Secret
	Pace time.Duration
}

// Sink posts to one incoming webhook.
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
	return &Sink{cfg: cfg, c: c, ep: httpx.Endpoint{Name: cfg.Name, Group: "slack", Pace: cfg.Pace}}
}

// Payload is an incoming-webhook body.
type Payload struct {
	Text   string  `json:"text"`
	Blocks []Block `json:"blocks,omitempty"`
}

// Block is a Block Kit block (header, section, context, divider).
type Block struct {
	Type     string  `json:"type"`
	Text     *Text   `json:"text,omitempty"`
	Fields   []*Text `json:"fields,omitempty"`
	Elements []*Text `json:"elements,omitempty"`
}

// Text is a text object.
type Text struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// Notify posts; success is only 200 with the body "ok".
func (s *Sink) Notify(ctx context.Context, r message.Request) (message.Result, error) {
	body, err := json.Marshal(Build(r.Msg, r.Kind))
	if err != nil {
		return message.Result{}, fmt.Errorf("slack %s: encode: %w", s.cfg.Name, err)
	}
	resp, err := s.c.Do(ctx, s.ep, httpx.Request{Method: http.MethodPost, URL: s.cfg.URL, Body: body})
	if err != nil {
		return message.Result{}, fmt.Errorf("slack %s: %w", s.cfg.Name, err)
	}
	if resp.Status != http.StatusOK || strings.TrimSpace(string(resp.Body)) != "ok" {
		return message.Result{}, fmt.Errorf("slack %s: unexpected answer HTTP %d %q", s.cfg.Name, resp.Status, httpx.Scrub(truncate(string(resp.Body), 100), s.cfg.URL))
	}
	return message.Result{}, nil
}

// Build lays the message out within every Block Kit limit.
func Build(m *message.Message, kind message.Kind) Payload {
	p := Payload{}
	title := m.TitleFor(kind)
	p.Text = truncate(esc(title), MaxText)
	p.Blocks = append(p.Blocks, Block{Type: "header", Text: &Text{Type: "plain_text", Text: truncate(esc(title), MaxHeaderText), Emoji: true}})
	section := func(s string) {
		if s = strings.TrimSpace(s); s != "" && len(p.Blocks) < MaxBlocks-1 {
			p.Blocks = append(p.Blocks, Block{Type: "section", Text: &Text{Type: "mrkdwn", Text: truncate(s, MaxSectionText)}})
		}
	}
	section(esc(m.Context))
	if !m.Firing || kind == message.KindFollowup {
		// Compact: a resolution or late advice follows a full message.
		if kind == message.KindFollowup && m.Advice != nil {
			adviceSections(m.Advice, section)
		}
		if !m.Firing && (len(m.Items) > 1 || m.More > 0) {
			section("*Alerts:* " + list(m))
		}
		p.Blocks = append(p.Blocks, contextBlock(m))
		return p
	}
	section(esc(cmp.Or(m.Headline, m.Summary)))
	if len(m.Fields) > 0 {
		b := Block{Type: "section"}
		for _, f := range m.Fields {
			if len(b.Fields) == MaxFields {
				break
			}
			b.Fields = append(b.Fields, &Text{Type: "mrkdwn", Text: truncate("*"+esc(f.Name)+"*\n"+esc(f.Value), MaxFieldText)})
		}
		p.Blocks = append(p.Blocks, b)
	}
	if m.Advice != nil {
		adviceSections(m.Advice, section)
	} else if m.AdviceNote != "" {
		section("_" + esc(m.AdviceNote) + "_")
	}
	if len(m.Evidence) > 0 {
		var ev []string
		for _, e := range m.Evidence {
			ev = append(ev, "• "+code(e))
		}
		section("*Evidence*\n" + strings.Join(ev, "\n"))
	}
	if len(m.Items) > 1 || m.More > 0 {
		section("*Alerts:* " + list(m))
	}
	p.Blocks = append(p.Blocks, contextBlock(m))
	return p
}

func adviceSections(a *message.Advice, section func(string)) {
	if a.Text != "" {
		section("*Advice*\n" + esc(a.Text))
	} else {
		h := "*Likely cause*"
		if a.Confidence != "" {
			h += " (confidence: " + esc(a.Confidence) + ")"
		}
		section(h + "\n" + esc(cmp.Or(a.LikelyCause, a.Summary)))
		if len(a.Evidence) > 0 {
			var ev []string
			for _, e := range a.Evidence {
				ev = append(ev, "• "+esc(e))
			}
			section("*Evidence (model)*\n" + strings.Join(ev, "\n"))
		}
		if len(a.Steps) > 0 {
			var st []string
			for i, x := range a.Steps {
				l := strconv.Itoa(i+1) + ". "
				if x.Risky {
					l += "⚠ " + code(x.Command) + " (changes the cluster)"
				} else {
					l += code(x.Command)
				}
				st = append(st, l)
			}
			section("*Next steps*\n" + strings.Join(st, "\n"))
		}
	}
	if a.Truncated {
		section("_the model's answer was cut at its token limit_")
	}
}

func contextBlock(m *message.Message) Block {
	b := Block{Type: "context"}
	var links []string
	for _, l := range m.Links {
		links = append(links, "<"+linkURL(l.URL)+"|"+l.Text+">")
	}
	if len(links) > 0 {
		b.Elements = append(b.Elements, &Text{Type: "mrkdwn", Text: truncate(strings.Join(links, " · "), MaxSectionText)})
	}
	foot := "trace " + m.ID
	if m.Advice != nil && m.Advice.Footer != "" {
		foot = esc(m.Advice.Footer) + " · " + foot
	}
	b.Elements = append(b.Elements, &Text{Type: "mrkdwn", Text: truncate(foot, MaxSectionText)})
	return b
}

func list(m *message.Message) string {
	items := make([]string, len(m.Items))
	for i, it := range m.Items {
		items[i] = esc(it)
	}
	return message.List(items, ", ", message.MaxItems, 1500, m.More)
}

func truncate(s string, n int) string { return message.Truncate(s, n) }

// esc applies Slack's escaping: only &, < and > are special, and escaping
// them defuses <!channel>, <!here>, <!everyone>, <@U…> and <!subteam^…>.
// Markdown emphasis characters are neutralised with a zero-width space so
// a log line cannot restyle the message, and bare @channel/@here are broken
// up in case the webhook has link_names enabled.
func esc(s string) string { return mentionBreaker.Replace(slackEscaper.Replace(s)) }

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

var mentionBreaker = strings.NewReplacer(
	"@channel", "@\u200bchannel", "@here", "@\u200bhere", "@everyone", "@\u200beveryone",
)

func code(s string) string {
	return "`" + esc(strings.ReplaceAll(s, "`", "ˋ")) + "`"
}

// linkURL escapes what would end a <url|text> link early, and breaks
// mentions a runbook_url annotation (untrusted text) could carry.
func linkURL(u string) string { return linkEscaper.Replace(u) }

var linkEscaper = strings.NewReplacer("&", "&amp;", "<", "%3C", ">", "%3E", "|", "%7C",
	"@channel", "%40channel", "@here", "%40here", "@everyone", "%40everyone")
