// Package notifiertest has httptest fakes of Discord, Slack and Teams
// webhooks that enforce the documented limits (shared/design/wire-facts.md)
// and rate limits, and answer 429 the way each platform does. They record
// what they accepted and what they refused, so tests and the storm
// benchmark can assert "nothing rejected, nothing pinged, nothing early".
package notifiertest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Platform limits, restated here on purpose (not imported from the sinks):
// a fake that shared the sink's constants would agree with a wrong number.
const (
	discordContent     = 2000
	discordEmbeds      = 10
	discordTitle       = 256
	discordDescription = 4096
	discordFields      = 25
	discordFieldName   = 256
	discordFieldValue  = 1024
	discordFooter      = 2048
	discordAuthor      = 256
	discordTotal       = 6000
	slackBlocks        = 50
	slackSection       = 3000
	slackFields        = 10
	slackField         = 2000
	slackHeader        = 150
	teamsBytes         = 28 * 1024
)

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	At     time.Time
	// Status is what the fake answered.
	Status int
	// Injected is true when the answer came from Inject or Down.
	Injected bool
}

// Response is an injected answer.
type Response struct {
	Status int
	Header map[string]string
	Body   string
}

// Rate is a token bucket: Burst requests at once, refilled at one per Every.
type Rate struct {
	Burst int
	Every time.Duration
}

// Fake is one platform webhook.
type Fake struct {
	t        testing.TB
	Server   *httptest.Server
	platform string
	path     string

	mu         sync.Mutex
	reqs       []Request
	inject     []Response
	down       *Response
	rate       Rate
	tokens     float64
	last       time.Time
	notBefore  time.Time // we advertised a retry time; earlier requests are "early"
	early      int
	refused    int
	violations []string
	pings      []string
	messages   map[string][]byte // Discord: id -> current body
	edits      int
	nextID     int
}

func newFake(t testing.TB, platform, path string, rate Rate) *Fake {
	t.Helper()
	f := &Fake{t: t, platform: platform, path: path, rate: rate, tokens: float64(rate.Burst), messages: map[string][]byte{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f
}

// NewDiscord fakes an execute-webhook; rate is Discord's per-webhook
// bucket, announced in X-RateLimit-* headers.
func NewDiscord(t testing.TB, rate Rate) *Fake {
	t.Helper()
	return newFake(t, "discord", "/api/webhooks/1234567890/discord-token-SECRET", rate)
}

// NewSlack fakes an incoming webhook (about 1/s, short bursts allowed).
func NewSlack(t testing.TB, rate Rate) *Fake {
	t.Helper()
	return newFake(t, "slack", "/services/T0000/B0000/slack-token-SECRET", rate)
}

// NewTeams fakes a Workflows webhook (more than 4/s is throttled).
func NewTeams(t testing.TB, rate Rate) *Fake {
	t.Helper()
	return newFake(t, "teams", "/workflows/abc/triggers/manual/paths/invoke", rate)
}

// NewWebhook fakes a generic JSON receiver (no limits, 200).
func NewWebhook(t testing.TB) *Fake {
	t.Helper()
	return newFake(t, "webhook", "/hook/webhook-token-SECRET", Rate{})
}

// URL is the secret webhook URL.
func (f *Fake) URL() string {
	u := f.Server.URL + f.path
	if f.platform == "teams" {
		u += "?api-version=1&sig=teams-sig-SECRET"
	}
	return u
}

// Inject queues answers for the next requests.
func (f *Fake) Inject(rs ...Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject = append(f.inject, rs...)
}

// Down makes every request get r until Up.
func (f *Fake) Down(r Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = &r
}

// Up ends Down.
func (f *Fake) Up() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = nil
}

// Requests returns every request received.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

// Accepted returns the requests answered with success.
func (f *Fake) Accepted() []Request {
	var out []Request
	for _, r := range f.Requests() {
		if r.Status >= 200 && r.Status < 300 {
			out = append(out, r)
		}
	}
	return out
}

// Posts counts accepted POSTs (new messages).
func (f *Fake) Posts() int {
	n := 0
	for _, r := range f.Accepted() {
		if r.Method == http.MethodPost {
			n++
		}
	}
	return n
}

// Edits counts accepted Discord message edits.
func (f *Fake) Edits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.edits
}

// Refused counts requests the platform refused on its own (limits, rate):
// injected failures are not counted.
func (f *Fake) Refused() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

// Early counts requests sent before the retry time we advertised.
func (f *Fake) Early() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.early
}

// Violations lists limit violations (each also answered 400).
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.violations...)
}

// Pings lists texts that would have notified someone.
func (f *Fake) Pings() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.pings...)
}

// Message returns the current body of a Discord message.
func (f *Fake) Message(id string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.messages[id]
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, At: now}
	defer func() { f.reqs = append(f.reqs, rec) }()
	if !f.notBefore.IsZero() && now.Before(f.notBefore) {
		f.early++
	}
	if !strings.HasPrefix(r.URL.Path, f.path) {
		rec.Status = http.StatusNotFound
		w.WriteHeader(rec.Status)
		return
	}
	var inj *Response
	if len(f.inject) > 0 {
		inj = &f.inject[0]
		f.inject = f.inject[1:]
	} else if f.down != nil {
		inj = f.down
	}
	if inj != nil {
		rec.Injected = true
		rec.Status = inj.Status
		f.advertise(now, inj.Header, inj.Body)
		for k, v := range inj.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(inj.Status)
		_, _ = io.WriteString(w, inj.Body)
		return
	}
	if wait, ok := f.take(now); !ok {
		f.refused++
		rec.Status = http.StatusTooManyRequests
		f.answer429(w, now, wait)
		return
	}
	switch f.platform {
	case "discord":
		rec.Status = f.discord(w, r, body)
	case "slack":
		rec.Status = f.slack(w, body)
	case "teams":
		rec.Status = f.teams(w, body)
	default:
		rec.Status = http.StatusOK
		w.WriteHeader(http.StatusOK)
	}
}

// take spends a token of the bucket, or says how long until one refills.
func (f *Fake) take(now time.Time) (time.Duration, bool) {
	if f.rate.Every <= 0 || f.rate.Burst <= 0 {
		return 0, true
	}
	if !f.last.IsZero() {
		f.tokens = math.Min(float64(f.rate.Burst), f.tokens+float64(now.Sub(f.last))/float64(f.rate.Every))
	}
	f.last = now
	if f.tokens >= 1 {
		f.tokens--
		return 0, true
	}
	return time.Duration((1 - f.tokens) * float64(f.rate.Every)), false
}

func (f *Fake) answer429(w http.ResponseWriter, now time.Time, wait time.Duration) {
	f.notBefore = now.Add(wait)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	if f.platform == "discord" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = fmt.Fprintf(w, `{"message":"You are being rate limited.","retry_after":%.3f,"global":false}`, wait.Seconds())
		return
	}
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = io.WriteString(w, "rate_limited")
}

// advertise remembers the retry time an injected answer named.
func (f *Fake) advertise(now time.Time, h map[string]string, body string) {
	var d time.Duration
	if v, ok := h["Retry-After"]; ok {
		if s, err := strconv.ParseFloat(v, 64); err == nil {
			d = time.Duration(s * float64(time.Second))
		}
	}
	var rl struct {
		RetryAfter *float64 `json:"retry_after"`
	}
	if json.Unmarshal([]byte(body), &rl) == nil && rl.RetryAfter != nil {
		d = time.Duration(*rl.RetryAfter * float64(time.Second))
	}
	if d > 0 {
		f.notBefore = now.Add(d)
	}
}

func (f *Fake) violate(w http.ResponseWriter, status int, body string, problems []string) int { //nolint:unparam // every platform answers a limit breach with 400 today; the status stays explicit
	f.violations = append(f.violations, problems...)
	f.refused++
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return status
}

// Texts of one Discord payload.
type discordPayload struct {
	Content string `json:"content"`
	Embeds  []struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Fields      []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"fields"`
		Footer *struct {
			Text string `json:"text"`
		} `json:"footer"`
		Author *struct {
			Name string `json:"name"`
		} `json:"author"`
	} `json:"embeds"`
	AllowedMentions *struct {
		Parse *[]string `json:"parse"`
	} `json:"allowed_mentions"`
}

var discordPing = regexp.MustCompile(`@everyone|@here|<@[!&]?\d+>`)

func runes(s string) int { return utf8.RuneCountInString(s) }

func (f *Fake) discord(w http.ResponseWriter, r *http.Request, body []byte) int {
	var p discordPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return f.violate(w, http.StatusBadRequest, `{"code":50109,"message":"The request body contains invalid JSON."}`, []string{"invalid JSON"})
	}
	var bad []string
	check := func(what string, s string, limit int) {
		if n := runes(s); n > limit {
			bad = append(bad, fmt.Sprintf("%s is %d > %d", what, n, limit))
		}
	}
	check("content", p.Content, discordContent)
	if len(p.Embeds) > discordEmbeds {
		bad = append(bad, "too many embeds")
	}
	texts := []string{p.Content}
	for _, e := range p.Embeds {
		total := runes(e.Title) + runes(e.Description)
		check("title", e.Title, discordTitle)
		check("description", e.Description, discordDescription)
		if len(e.Fields) > discordFields {
			bad = append(bad, "too many fields")
		}
		texts = append(texts, e.Title, e.Description)
		for _, fl := range e.Fields {
			check("field name", fl.Name, discordFieldName)
			check("field value", fl.Value, discordFieldValue)
			total += runes(fl.Name) + runes(fl.Value)
			texts = append(texts, fl.Name, fl.Value)
		}
		if e.Footer != nil {
			check("footer", e.Footer.Text, discordFooter)
			total += runes(e.Footer.Text)
			texts = append(texts, e.Footer.Text)
		}
		if e.Author != nil {
			check("author", e.Author.Name, discordAuthor)
			total += runes(e.Author.Name)
		}
		if total > discordTotal {
			bad = append(bad, fmt.Sprintf("embed total %d > %d", total, discordTotal))
		}
	}
	silenced := p.AllowedMentions != nil && p.AllowedMentions.Parse != nil && len(*p.AllowedMentions.Parse) == 0
	if !silenced {
		f.pings = append(f.pings, "allowed_mentions is not {parse: []}")
	}
	for _, s := range texts {
		if m := discordPing.FindString(s); m != "" {
			f.pings = append(f.pings, m)
		}
	}
	if len(bad) > 0 {
		return f.violate(w, http.StatusBadRequest, `{"code":50035,"message":"Invalid Form Body"}`, bad)
	}
	// Discord's per-webhook bucket, announced in headers.
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(f.rate.Burst))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(int(f.tokens)))
	if f.rate.Every > 0 && f.tokens < 1 {
		w.Header().Set("X-RateLimit-Reset-After", fmt.Sprintf("%.3f", (1-f.tokens)*f.rate.Every.Seconds()))
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPatch {
		id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		if _, ok := f.messages[id]; !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"Unknown Message","code":10008}`)
			return http.StatusNotFound
		}
		f.messages[id] = body
		f.edits++
		_, _ = fmt.Fprintf(w, `{"id":%q}`, id) //nolint:gosec // a test fake echoing its own message id as JSON
		return http.StatusOK
	}
	if r.URL.Query().Get("wait") != "true" {
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	f.nextID++
	id := strconv.Itoa(1000 + f.nextID)
	f.messages[id] = body
	_, _ = fmt.Fprintf(w, `{"id":%q}`, id)
	return http.StatusOK
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackPayload struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type     string       `json:"type"`
		Text     *slackText   `json:"text"`
		Fields   []*slackText `json:"fields"`
		Elements []*slackText `json:"elements"`
	} `json:"blocks"`
}

var slackPing = regexp.MustCompile(`<!(channel|here|everyone)|<@[UW]|<!subteam|@channel|@here|@everyone`)

func (f *Fake) slack(w http.ResponseWriter, body []byte) int {
	var p slackPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return f.violate(w, http.StatusBadRequest, "invalid_payload", []string{"invalid JSON"})
	}
	var bad []string
	texts := []string{p.Text}
	if strings.TrimSpace(p.Text) == "" {
		bad = append(bad, "text (the notification fallback) is empty")
	}
	if len(p.Blocks) > slackBlocks {
		bad = append(bad, fmt.Sprintf("%d blocks > %d", len(p.Blocks), slackBlocks))
	}
	for _, b := range p.Blocks {
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || runes(b.Text.Text) > slackHeader {
				bad = append(bad, "header text missing, not plain_text or over 150")
			}
		case "section":
			if b.Text != nil && runes(b.Text.Text) > slackSection {
				bad = append(bad, fmt.Sprintf("section text %d > %d", runes(b.Text.Text), slackSection))
			}
			if len(b.Fields) > slackFields {
				bad = append(bad, "too many section fields")
			}
			for _, fl := range b.Fields {
				if runes(fl.Text) > slackField {
					bad = append(bad, "section field over 2000")
				}
				texts = append(texts, fl.Text)
			}
		case "context":
			if len(b.Elements) > 10 {
				bad = append(bad, "too many context elements")
			}
			for _, e := range b.Elements {
				texts = append(texts, e.Text)
			}
		}
		if b.Text != nil {
			texts = append(texts, b.Text.Text)
		}
	}
	for _, s := range texts {
		if m := slackPing.FindString(s); m != "" {
			f.pings = append(f.pings, m)
		}
	}
	if len(bad) > 0 {
		return f.violate(w, http.StatusBadRequest, "invalid_payload", bad)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
	return http.StatusOK
}

var teamsPing = regexp.MustCompile(`(?i)<\s*/?\s*at\b`)

func (f *Fake) teams(w http.ResponseWriter, body []byte) int {
	var bad []string
	if len(body) > teamsBytes {
		bad = append(bad, fmt.Sprintf("body %d bytes > %d", len(body), teamsBytes))
	}
	var p struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type    string          `json:"type"`
				Version string          `json:"version"`
				Body    json.RawMessage `json:"body"`
				MSTeams *struct {
					Entities json.RawMessage `json:"entities"`
				} `json:"msteams"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		bad = append(bad, "invalid JSON")
	} else if p.Type != "message" || len(p.Attachments) != 1 ||
		p.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" || p.Attachments[0].Content.Type != "AdaptiveCard" {
		bad = append(bad, "not an Adaptive Card message envelope")
	} else if mt := p.Attachments[0].Content.MSTeams; mt != nil && len(mt.Entities) > 0 {
		f.pings = append(f.pings, "msteams.entities present")
	}
	if m := teamsPing.Find(body); m != nil {
		f.pings = append(f.pings, string(m))
	}
	if len(bad) > 0 {
		return f.violate(w, http.StatusBadRequest, "Bad payload", bad)
	}
	w.WriteHeader(http.StatusAccepted)
	return http.StatusAccepted
}
