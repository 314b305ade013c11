package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/trace"
)

// natsFlags adds --nats-url and returns a function that connects.
func natsFlags(fs *flag.FlagSet) func(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
	url := fs.String("nats-url", envOr("SMARTMON_NATS_URL", "nats://127.0.0.1:4222"),
		"NATS server (env SMARTMON_NATS_URL; `smartmon run` serves its embedded one on 127.0.0.1:4222)")
	return func(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
		var c jsx.Config
		c.Defaults()
		if err := c.ApplyEnv(config.OSEnv()); err != nil {
			return nil, nil, err
		}
		c.URLs = strings.Split(*url, ",")
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		nc, err := jsx.Connect(cctx, c, "smartmon-cli", zap.NewNop(), nats.MaxReconnects(0))
		if err != nil {
			return nil, nil, fmt.Errorf("%w (is `smartmon run` running, or is --nats-url right?)", err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return nc, js, nil
	}
}

func traceCmd(ctx context.Context, args []string, sio IO) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	connect := natsFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w", errUsage)
	}
	if fs.NArg() != 1 {
		return usageErr("want one notification id or alert fingerprint")
	}
	nc, js, err := connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	tr, err := trace.OpenExisting(ctx, js, zap.NewNop())
	if err != nil {
		return err
	}
	ts, err := tr.Lookup(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(sio.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(ts)
	}
	for _, t := range ts {
		if _, err := fmt.Fprint(sio.Out, trace.Format(t)); err != nil {
			return err
		}
	}
	return nil
}

func dlqCmd(ctx context.Context, args []string, sio IO) error {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	connect := natsFlags(fs)
	all := fs.Bool("all", false, "replay: every dead letter")
	limit := fs.Int("limit", 1000, "list: at most this many")
	// Accept flags after the verb too: `dlq replay --all`.
	if len(args) == 0 {
		return usageErr("want list, show ID, replay ID|--all or purge")
	}
	verb := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w", errUsage)
	}
	seqArg := func() (uint64, error) {
		if fs.NArg() != 1 {
			return 0, usageErr("%s wants one dead-letter ID (see `smartmon dlq list`)", verb)
		}
		n, err := strconv.ParseUint(fs.Arg(0), 10, 64)
		if err != nil {
			return 0, usageErr("dead-letter ID %q is not a number", fs.Arg(0))
		}
		return n, nil
	}
	nc, js, err := connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	switch verb {
	case "list":
		list, err := jsx.ListDeadLetters(ctx, js, *limit)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			_, err = fmt.Fprintln(sio.Out, "no dead letters")
			return err
		}
		fmt.Fprintf(sio.Out, "%-6s %-20s %-9s %-8s %-32s %s\n", "ID", "WHEN", "STAGE", "ATTEMPTS", "NOTIFICATION", "ERROR")
		for _, d := range list {
			fmt.Fprintf(sio.Out, "%-6d %-20s %-9s %-8d %-32s %s\n", d.Seq, d.At.Format(time.RFC3339), d.Stage, d.Attempts, d.NotificationID, oneLine(d.Error, 100))
		}
		return nil
	case "show":
		seq, err := seqArg()
		if err != nil {
			return err
		}
		d, err := jsx.GetDeadLetter(ctx, js, seq)
		if err != nil {
			return err
		}
		fmt.Fprintf(sio.Out, "dead letter %d\n  stage:    %s\n  subject:  %s\n  when:     %s\n  attempts: %d\n  error:    %s\n",
			d.Seq, d.Stage, d.Subject, d.At.Format(time.RFC3339), d.Attempts, d.Error)
		if env, err := envelope.Decode(d.Data); err == nil {
			fmt.Fprintf(sio.Out, "  alert:    %s %s (%d alerts, group %s)\n", env.Notification.Status, env.AlertName(), len(env.Notification.Alerts), env.Notification.GroupKey)
			b, _ := json.MarshalIndent(env, "  ", "  ")
			fmt.Fprintf(sio.Out, "  message:\n  %s\n", b)
		} else {
			fmt.Fprintf(sio.Out, "  message (%d bytes, not an envelope: %v):\n  %q\n", len(d.Data), err, oneLine(string(d.Data), 2000))
		}
		return nil
	case "replay":
		var seqs []uint64
		if *all {
			list, err := jsx.ListDeadLetters(ctx, js, 1<<30)
			if err != nil {
				return err
			}
			for _, d := range list {
				seqs = append(seqs, d.Seq)
			}
		} else {
			seq, err := seqArg()
			if err != nil {
				return err
			}
			seqs = []uint64{seq}
		}
		var errs []error
		for _, seq := range seqs {
			d, err := jsx.ReplayDeadLetter(ctx, js, seq)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(sio.Out, "replayed %d into %s (%s)\n", seq, d.Stage, d.Subject)
		}
		return errors.Join(errs...)
	case "purge":
		n, err := jsx.PurgeDeadLetters(ctx, js)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(sio.Out, "purged %d dead letters\n", n)
		return err
	default:
		return usageErr("unknown dlq verb %q: want list, show, replay or purge", verb)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
