// Command integration-example is the example integration's program, the
// entrypoint of the integration-example image.
package main

import (
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/integrations/example"
)

func main() {
	integration.Main(example.Name, example.Run, integration.WithValidate(example.Validate))
}
