// Command platform is the Collector control plane: the HTTPS server and the
// administrator's CLI that drives it.
package main

import "github.com/collectorhq/collector/internal/cliutil"

func main() { cliutil.Main(newApp(), classify) }
