package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/app"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/config"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/logging"
)

func runCmd(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Err)
	cfgPath := fs.String("config", envOr("SMARTMON_CONFIG", ""), "YAML config file (env SMARTMON_CONFIG); optional")
	dataDir := fs.String("data-dir", "", "embedded JetStream store (default ./data; config data_dir)")
	listen := fs.String("listen", "", "ingest listen address (default 127.0.0.1:9095; config ingest.listen)")
	natsListen := fs.String("nats-listen", "", `embedded NATS client address for the CLI, "" to disable (default 127.0.0.1:4222)`)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w", errUsage)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %v", fs.Args())
	}
	cfg, err := app.Load(*cfgPath, config.OSEnv())
	if err != nil {
		return err
	}
	// Flags beat the file and the environment.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = *dataDir
		case "listen":
			cfg.Ingest.Listen = *listen
		case "nats-listen":
			cfg.Embedded.Listen = *natsListen
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := logging.New(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	a, err := app.New(ctx, cfg, log, app.Options{Console: io.Out})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
