package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/platform"
)

// keysCACommand rotates the platform's own CA, the one collectors pin for
// TLS, on the platform's host (docs/auth.md, "Rotating the platform CA"):
// announce a next CA, whose pin collectors take from their heartbeat
// answers; switch to it (the running platform serves a certificate of it
// at its next handshakes); the old CA is accepted until the grace ends.
var keysCACommand = &cli.Command{
	Name:  "ca",
	Usage: "rotate the platform CA collectors pin for TLS (on the platform's host, in its data directory)",
	Subcommands: []*cli.Command{
		{Name: "status", Usage: "show the current, announced and previous CA pins",
			Flags: []cli.Flag{dataDirFlag(), signingJSONFlag()}, Action: keysCAStatus},
		{Name: "announce", Usage: "create the next CA: heartbeat and lease answers state its pin, signed by the signing key, and collectors pin it",
			Flags: []cli.Flag{dataDirFlag(), signingJSONFlag()}, Action: keysCAAnnounce},
		{Name: "switch", Usage: "serve a certificate of the announced CA from now on; collectors accept the old CA until the grace ends",
			Flags: []cli.Flag{dataDirFlag(), signingJSONFlag(),
				&cli.DurationFlag{Name: "grace", Value: platform.DefaultCAGrace,
					Usage: "how long collectors still accept the old CA (until every replica serves the new one)"},
				&cli.BoolFlag{Name: "force", Usage: fmt.Sprintf("switch even if the CA was announced less than %v ago (collectors that have not pinned it lose the platform until they re-enroll)", platform.MinSigningAnnounce)},
			}, Action: keysCASwitch},
	},
}

func keysCAStatus(c *cli.Context) error {
	if _, err := lateFlags(c); err != nil {
		return err
	}
	st, err := platform.CAKeyStatus(c.String("data-dir"))
	if err != nil {
		return cliutil.Exit(cliutil.ExitFailure, err)
	}
	return printRotationStatus(c, st)
}

func keysCAAnnounce(c *cli.Context) error {
	if _, err := lateFlags(c); err != nil {
		return err
	}
	dir := c.String("data-dir")
	pin, err := platform.AnnounceCA(dir, time.Now())
	if err != nil {
		return cliutil.Exit(cliutil.ExitConflict, err)
	}
	if c.Bool("json") {
		st, err := platform.CAKeyStatus(dir)
		if err != nil {
			return err
		}
		return printRotationStatus(c, st)
	}
	fmt.Fprintf(c.App.Writer, "Announced CA %s: collectors pin it from their next heartbeat.\n"+
		"If replicas have their own copy of the data directory, copy %s and %s to each (cp -a, owner only).\n"+
		"Next, after %v or more: platform keys ca switch\n", pin, platform.CANextCertFile, platform.CANextKeyFile, platform.MinSigningAnnounce)
	return nil
}

func keysCASwitch(c *cli.Context) error {
	if _, err := lateFlags(c); err != nil {
		return err
	}
	st, err := platform.SwitchCA(c.String("data-dir"), c.Duration("grace"), c.Bool("force"), time.Now())
	if errors.Is(err, platform.ErrCAAnnouncedTooRecently) {
		return cliutil.Exit(cliutil.ExitConflict, err)
	}
	if err != nil {
		return cliutil.Exit(cliutil.ExitFailure, err)
	}
	if c.Bool("json") {
		return printRotationStatus(c, st)
	}
	fmt.Fprintf(c.App.Writer, "The platform serves a certificate of CA %s from now on; collectors accept CA %s until %s.\n"+
		"If replicas have their own copy of the data directory, copy %s, %s, %s and %s to each now.\n"+
		"Admin clients that trust %s by file (--ca-file) need the new one.\n",
		st.Current, st.Previous, st.PreviousUntil.Format(time.RFC3339),
		platform.CACertFile, platform.CAKeyFile, platform.CAPreviousCertFile, platform.CAPreviousUntilFile, platform.CACertFile)
	return nil
}
