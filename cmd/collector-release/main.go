// Command collector-release signs Collector's container images with a
// cosign key pair, offline (no transparency log, no Fulcio), and verifies
// them: `keygen`, `sign`, `verify`. It is the only binary that links cosign.
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
	os.Exit(cliutil.Report(os.Stderr, "collector-release", err, classify))
}
