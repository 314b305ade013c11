// Package cli implements smartmon's subcommands.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/version"
)

// IO are the process's streams.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// errUsage marks a usage error (exit code 2).
var errUsage = errors.New("usage")

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, io IO) error
}

func commands() []command {
	return []command{
		{"run", "run the whole pipeline in one process (embedded NATS under --data-dir)", runCmd},
		{"send-test-alert", "post a realistic CrashLoopBackOff notification, as Alertmanager would", sendTestAlertCmd},
		{"trace", "show where a notification is: smartmon trace <notification id | fingerprint>", traceCmd},
		{"dlq", "dead letters: smartmon dlq list | show ID | replay ID|--all | purge", dlqCmd},
		{"am-check", "check an alertmanager.yml routes alerts to smartmon: smartmon am-check FILE [--alert 'k=v,...']", amCheckCmd},
		{"version", "print the version", func(_ context.Context, _ []string, io IO) error {
			_, err := fmt.Fprintln(io.Out, "smartmon", version.String())
			return err
		}},
	}
}

// Main runs a subcommand and returns the exit code.
func Main(ctx context.Context, args []string, io IO) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(io.Err)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], io)
			var ec exitCode
			switch {
			case err == nil:
				return 0
			case errors.As(err, &ec):
				return int(ec)
			case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
				if !errors.Is(err, flag.ErrHelp) && err.Error() != errUsage.Error() {
					_, _ = fmt.Fprintf(io.Err, "smartmon %s: %v\n", c.name, err)
				}
				return 2
			default:
				_, _ = fmt.Fprintf(io.Err, "smartmon %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	_, _ = fmt.Fprintf(io.Err, "smartmon: unknown command %q\n\n", args[0])
	usage(io.Err)
	return 2
}

// exitCode lets a command choose its exit code without printing more.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("smartmon: alerts from Alertmanager, with Kubernetes evidence and local-LLM advice, to chat.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-16s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'smartmon <command> -h' for its flags. Configuration: README.md.\n")
	_, _ = io.WriteString(w, b.String())
}

// usageErr wraps a message as a usage error.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
