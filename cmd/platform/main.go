// Command platform is the Collector control plane: the HTTPS server and the
// administrator's CLI that drives it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/collectorhq/collector/internal/cliutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().RunContext(ctx, os.Args)
	stop()
	os.Exit(cliutil.Report(os.Stderr, "platform", err, classify))
}
