package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/collector"
	"github.com/collectorhq/collector/internal/logging"
)

var keysCommand = &cli.Command{
	Name:  "keys",
	Usage: "the collector's identity and HPKE keys",
	Subcommands: []*cli.Command{{
		Name: "rotate",
		Usage: "replace the identity and HPKE keys now, without re-enrolling and without stopping jobs " +
			"(as root on the host: the daemon and runner only read the config dir)",
		Flags: []cli.Flag{dirFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			log, err := logging.FromContext(c)
			if err != nil {
				return err
			}
			res, err := collector.RotateKeys(c.Context, collector.Env{Dir: c.String("config-dir"), Log: log})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, res)
			}
			if res.Finished {
				fmt.Fprintln(c.App.Writer, "finished the key rotation an earlier run left unfinished")
			}
			fmt.Fprintf(c.App.Writer, "identity key  %s\nHPKE key      %s\n", res.IdentityKeyFingerprint, res.HPKEKeyFingerprint)
			if !res.PreviousValidUntil.IsZero() {
				fmt.Fprintf(c.App.Writer, "the old keys are accepted until %s; the daemon and runner switch before then\n",
					res.PreviousValidUntil.Local().Format(time.RFC3339))
			}
			return nil
		},
	}},
}
