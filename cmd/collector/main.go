// Command collector is the appliance side of Collector: the installer, the
// daemon and the runner roles of the collector image, and the operator CLI.
package main

import "github.com/collectorhq/collector/internal/cliutil"

func main() { cliutil.Main(newApp(), classify) }
