package amcheck

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/common/model"
)

// Exit codes of Run.
const (
	ExitOK       = 0
	ExitFindings = 1
	ExitUsage    = 2
)

const usage = `usage: smartmon am-check [--alert 'alertname=X,namespace=Y']... [--ingest-url URL] alertmanager.yml

Loads an Alertmanager configuration with Alertmanager's own config package and
reports whether the given alerts reach a receiver that posts to smartmon's
ingest (%s), and the usual routing mistakes. Exit status: 0 fine, 1 problems
found, 2 usage or load error.
`

// labelFlag collects repeated --alert flags.
type labelFlag []model.LabelSet

func (l *labelFlag) String() string { return fmt.Sprint([]model.LabelSet(*l)) }

func (l *labelFlag) Set(v string) error {
	ls, err := ParseLabels(v)
	if err != nil {
		return err
	}
	*l = append(*l, ls)
	return nil
}

// Run is the `smartmon am-check` subcommand; args exclude the subcommand
// name. The context is accepted for symmetry with the other subcommands:
// the check does no I/O besides reading one file.
func Run(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("am-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), usage, IngestPath)
		fs.PrintDefaults()
	}
	var alerts labelFlag
	var ingestURL string
	fs.Var(&alerts, "alert", "labels of an alert to route, e.g. 'alertname=KubePodCrashLooping,namespace=payments' (repeatable)")
	fs.StringVar(&ingestURL, "ingest-url", "", "smartmon's ingest URL; when set, a webhook must also point at this host")

	// Accept flags before and after the file name.
	var files []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return ExitOK
			}
			return ExitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) != 1 {
		fmt.Fprintf(stderr, "am-check: want exactly one alertmanager.yml, got %d\n", len(files))
		fs.Usage()
		return ExitUsage
	}
	var opts Options
	opts.Alerts = alerts
	if ingestURL != "" {
		u, err := url.Parse(ingestURL)
		if err != nil || u.Host == "" {
			fmt.Fprintf(stderr, "am-check: --ingest-url %q is not an absolute URL\n", ingestURL)
			return ExitUsage
		}
		opts.IngestURL = u
	}

	cfg, err := LoadFile(files[0])
	if err != nil {
		fmt.Fprintf(stderr, "am-check: %v\n", err)
		return ExitUsage
	}
	rep := Check(cfg, opts)
	Print(stdout, files[0], &rep)
	if rep.Problems() > 0 {
		return ExitFindings
	}
	return ExitOK
}

// LoadFile loads and validates the configuration as Alertmanager would at
// startup, and explains the load errors people hit most.
func LoadFile(path string) (*config.Config, error) {
	cfg, err := config.LoadFile(path)
	if err == nil {
		return cfg, nil
	}
	msg := err.Error()
	hint := ""
	switch {
	case strings.Contains(msg, `undefined receiver "null"`):
		hint = ` (a route names the receiver "null" but receivers has no entry for it: add "- name: 'null'" under receivers; ` +
			`Alertmanager refuses the whole file, so it keeps running its previous config or does not start)`
	case strings.Contains(msg, "undefined receiver"):
		hint = " (every receiver a route names must be defined under receivers)"
	case strings.Contains(msg, "root route must not have any matchers"):
		hint = " (the root route is the catch-all: move the matchers to a child route)"
	case strings.Contains(msg, "field") && strings.Contains(msg, "not found"):
		hint = " (an unknown key: check its spelling and indentation; Alertmanager rejects the whole file)"
	}
	return nil, fmt.Errorf("load %s: %w%s", path, err, hint)
}

// Print writes a human-readable report.
func Print(w io.Writer, name string, rep *Report) {
	fmt.Fprintf(w, "am-check %s\n", name)
	if len(rep.Endpoints) == 0 {
		fmt.Fprintln(w, "  webhooks: none")
	}
	for _, ep := range rep.Endpoints {
		kind := "other webhook"
		if ep.Ingest {
			kind = "smartmon ingest"
		}
		auth := ep.Auth
		if auth == "" {
			auth = "no auth"
		}
		fmt.Fprintf(w, "  receiver %q: %s (%s; %s; send_resolved=%t)\n", ep.Receiver, ep.URL, kind, auth, ep.SendResolved)
	}
	for _, d := range rep.Deliveries {
		verdict := "does NOT reach ingest"
		if d.Ingest {
			verdict = "reaches ingest"
		}
		fmt.Fprintf(w, "  alert %s %s: routes %s, receivers %s\n", d.Alert, verdict, strings.Join(d.Routes, ", "), quoteAll(d.Receivers))
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "%s [%s] %s\n", f.Severity, f.Code, f.Message)
	}
	if len(rep.Deliveries) == 0 {
		fmt.Fprintln(w, "(no --alert given: pass --alert 'alertname=KubePodCrashLooping,namespace=payments' to check a specific alert's route)")
	}
	fmt.Fprintf(w, "%d problem(s)\n", rep.Problems())
}

// ParseLabels reads 'name=value,name2="value 2"' into a label set.
func ParseLabels(s string) (model.LabelSet, error) {
	ls := model.LabelSet{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want name=value", part)
		}
		name = strings.TrimSpace(name)
		value = strings.Trim(strings.TrimSpace(value), `"'`)
		ln := model.LabelName(name)
		if !model.LegacyValidation.IsValidLabelName(name) {
			return nil, fmt.Errorf("label name %q is not valid", name)
		}
		ls[ln] = model.LabelValue(value)
	}
	if len(ls) == 0 {
		return nil, errors.New("no labels given")
	}
	if _, ok := ls[model.AlertNameLabel]; !ok {
		return nil, errors.New("labels need an alertname")
	}
	return ls, nil
}
