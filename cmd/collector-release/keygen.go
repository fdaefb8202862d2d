package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/release"
)

var keygenCommand = &cli.Command{
	Name:  "keygen",
	Usage: "generate a cosign key pair: PREFIX.key (encrypted with " + release.PasswordEnv + ") and PREFIX.pub",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output-key-prefix", Value: "cosign", Usage: "write PREFIX.key and PREFIX.pub"},
	},
	Action: func(c *cli.Context) error {
		pass, err := password(true)
		if err != nil {
			return err
		}
		priv, pub, err := release.WriteKeyPair(c.String("output-key-prefix"), pass)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Private key written to %s\nPublic key written to %s\n", priv, pub)
		return nil
	},
}
