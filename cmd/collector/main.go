// Command collector is the appliance side of Collector: the installer, the
// daemon and the runner roles of the collector image, and the operator CLI.
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
	os.Exit(cliutil.Report(os.Stderr, "collector", err, classify))
}
