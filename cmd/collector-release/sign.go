package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/collectorhq/collector/internal/env"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/release"
)

var signCommand = &cli.Command{
	Name:      "sign",
	Usage:     "sign an image in a registry (a tag is resolved to its digest; the digest is signed) and push the signature next to it",
	ArgsUsage: "IMAGE",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "key", Required: true, EnvVars: []string{env.ReleaseKey}, Usage: "cosign private key file (password in " + release.PasswordEnv + ")"},
		&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
	}, registryFlags...),
	Action: func(c *cli.Context) error {
		ref, err := oneImage(c)
		if err != nil {
			return err
		}
		key, err := os.ReadFile(c.String("key"))
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		pass, err := password(false)
		if err != nil {
			return err
		}
		digest, err := release.Sign(c.Context, ref, key, pass, registryOptions(c))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return json.NewEncoder(c.App.Writer).Encode(map[string]string{"image": ref, "signed": digest})
		}
		fmt.Fprintf(c.App.Writer, "signed %s\n", digest)
		return nil
	},
}
