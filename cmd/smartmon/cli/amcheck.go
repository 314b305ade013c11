package cli

import (
	"context"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon/amcheck"
)

func amCheckCmd(ctx context.Context, args []string, sio IO) error {
	if code := amcheck.Run(ctx, args, sio.Out, sio.Err); code != 0 {
		return exitCode(code)
	}
	return nil
}
