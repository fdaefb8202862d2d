// Command collector-release signs Collector's container images with a
// cosign key pair, offline (no transparency log, no Fulcio), and verifies
// them: `keygen`, `sign`, `verify`. It is the only binary that links cosign.
package main

import (
	"os"

	"github.com/collectorhq/collector/internal/cliutil"
)

func main() {
	app := newApp()
	// `build ./pkg --image REF`: flags may follow the package.
	cliutil.MainArgs(app, cliutil.Interspersed(app, os.Args, "build", "sign", "verify"), classify)
}
