package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/collectorhq/collector/internal/env"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/release"
)

var verifyCommand = &cli.Command{
	Name:      "verify",
	Usage:     "check that an image carries a valid signature by the public key",
	ArgsUsage: "IMAGE",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "key", Required: true, EnvVars: []string{env.ReleasePubKey}, Usage: "cosign public key file"},
		&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
	}, registryFlags...),
	Action: func(c *cli.Context) error {
		ref, err := oneImage(c)
		if err != nil {
			return err
		}
		pub, err := os.ReadFile(c.String("key"))
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		digest, n, err := release.Verify(c.Context, ref, pub, registryOptions(c))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return json.NewEncoder(c.App.Writer).Encode(map[string]any{"image": ref, "verified": digest, "signatures": n})
		}
		fmt.Fprintf(c.App.Writer, "verified %s (%d valid signature(s))\n", digest, n)
		return nil
	},
}
