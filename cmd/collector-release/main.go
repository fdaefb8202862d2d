// Command collector-release signs Collector's container images with a
// cosign key pair, offline (no transparency log, no Fulcio), and verifies
// them: `keygen`, `sign`, `verify`. It is the only binary that links cosign.
package main

import "github.com/collectorhq/collector/internal/cliutil"

func main() { cliutil.Main(newApp(), classify) }
