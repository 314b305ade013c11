package message

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Marker ends every text that was cut, so a reader knows there was more.
const Marker = "… [truncated]"

// Truncate cuts s to at most maxRunes runes (Unicode code points, which is
// how Discord, Slack and Teams count their limits), ending with Marker when
// it cut. It never splits a rune.
func Truncate(s string, maxRunes int) string {
	if maxRunes <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= maxRunes {
		return s
	}
	m := []rune(Marker)
	if maxRunes <= len(m) {
		return string([]rune(s)[:maxRunes])
	}
	r := []rune(s)[:maxRunes-len(m)]
	return strings.TrimRightFunc(string(r), unicode.IsSpace) + Marker
}

// Runes counts s the way the platforms' limits do.
func Runes(s string) int { return utf8.RuneCountInString(s) }

// MaxText bounds any one text taken from an alert, the cluster or the
// model: no platform shows more than 4096 characters in one place, and
// escaping megabytes of log only to cut them later would waste time.
const MaxText = 6000

// Clean removes control characters (terminal escape sequences in a log
// line would rewrite the operator's console) and, unless keepNewlines,
// folds line breaks and tabs into spaces. It keeps at most MaxText runes.
func Clean(s string, keepNewlines bool) string {
	if s == "" {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), 4*MaxText))
	n := 0
	for _, r := range s {
		if n == MaxText {
			b.WriteString(Marker)
			break
		}
		n++
		switch {
		case r == '\n' && keepNewlines:
			b.WriteRune(r)
		case r == '\n' || r == '\t' || r == '\r':
			b.WriteByte(' ')
		case r == utf8.RuneError, unicode.IsControl(r):
			// dropped
		case r == '\u202e' || r == '\u202d' || r == '\u2066' || r == '\u2067' || r == '\u2068' || r == '\u2069':
			// bidi overrides can make a command read differently than it runs
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// List joins items with sep, adding as many as fit in maxItems and
// maxRunes, and ends with "+N more" for the rest (more counts items that
// were never in the list, e.g. Alertmanager's truncatedAlerts).
func List(items []string, sep string, maxItems, maxRunes, more int) string {
	var b strings.Builder
	n := 0
	total := len(items) + more
	for i, it := range items {
		if n >= maxItems {
			break
		}
		rest := total - i - 1
		tail := ""
		if rest > 0 {
			tail = sep + "+" + strconv.Itoa(rest) + " more"
		}
		add := it
		if n > 0 {
			add = sep + it
		}
		if Runes(b.String())+Runes(add)+Runes(tail) > maxRunes {
			break
		}
		b.WriteString(add)
		n++
	}
	if rest := total - n; rest > 0 {
		tail := "+" + strconv.Itoa(rest) + " more"
		if n > 0 {
			tail = sep + tail
		}
		b.WriteString(tail)
	}
	return Truncate(b.String(), maxRunes)
}
