// Command smartmon runs the smart-k8s-monitor pipeline in one process and
// carries the operator's tools (send-test-alert, trace, dlq, am-check).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
