package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/platform"
)

// keysSigningCommand rotates the platform's envelope-signing key on the
// platform's host (docs/auth.md, "Rotating the platform's signing key"):
// announce a next key, which collectors pin from their leases; switch
// to it; the old key is accepted until the grace ends. The running
// platform reads the key files again when they change: no restart.
var keysSigningCommand = &cli.Command{
	Name:  "signing",
	Usage: "rotate the envelope-signing key collectors pin (on the platform's host, in its data directory)",
	Subcommands: []*cli.Command{
		{Name: "status", Usage: "show the current, announced and previous signing keys",
			Flags: []cli.Flag{dataDirFlag(), signingJSONFlag()}, Action: keysSigningStatus},
		{Name: "announce", Usage: "create the next signing key: leases announce it, signed by the current key, and collectors pin it",
			Flags: []cli.Flag{dataDirFlag(), signingJSONFlag()}, Action: keysSigningAnnounce},
		{Name: "switch", Usage: "sign envelopes with the announced key from now on; collectors accept the old one until the grace ends",
			Flags: []cli.Flag{dataDirFlag(), signingJSONFlag(),
				&cli.DurationFlag{Name: "grace", Value: platform.DefaultSigningGrace,
					Usage: "how long collectors still accept the old key (longer than a job's envelope lives)"},
				&cli.BoolFlag{Name: "force", Usage: fmt.Sprintf("switch even if the key was announced less than %v ago (collectors that have not pinned it refuse its envelopes)", platform.MinSigningAnnounce)},
			}, Action: keysSigningSwitch},
	},
}

func signingJSONFlag() cli.Flag { return &cli.BoolFlag{Name: "json", Usage: "print JSON for machines"} }

func keysSigningStatus(c *cli.Context) error {
	if _, err := lateFlags(c); err != nil {
		return err
	}
	st, err := platform.SigningKeyStatus(c.String("data-dir"))
	if err != nil {
		return cliutil.Exit(cliutil.ExitFailure, err)
	}
	return printRotationStatus(c, st)
}

func keysSigningAnnounce(c *cli.Context) error {
	if _, err := lateFlags(c); err != nil {
		return err
	}
	dir := c.String("data-dir")
	fp, err := platform.AnnounceSigningKey(dir, time.Now())
	if err != nil {
		return cliutil.Exit(cliutil.ExitConflict, err)
	}
	if c.Bool("json") {
		st, err := platform.SigningKeyStatus(dir)
		if err != nil {
			return err
		}
		return printRotationStatus(c, st)
	}
	fmt.Fprintf(c.App.Writer, "Announced signing key %s: collectors pin it from their next lease.\n"+
		"If replicas have their own copy of the data directory, copy %s to each (cp -a, owner only).\n"+
		"Next, after %v or more: platform keys signing switch\n", fp, platform.SigningNextFile, platform.MinSigningAnnounce)
	return nil
}

func keysSigningSwitch(c *cli.Context) error {
	if _, err := lateFlags(c); err != nil {
		return err
	}
	st, err := platform.SwitchSigningKey(c.String("data-dir"), c.Duration("grace"), c.Bool("force"), time.Now())
	if errors.Is(err, platform.ErrAnnouncedTooRecently) {
		return cliutil.Exit(cliutil.ExitConflict, err)
	}
	if err != nil {
		return cliutil.Exit(cliutil.ExitFailure, err)
	}
	if c.Bool("json") {
		return printRotationStatus(c, st)
	}
	fmt.Fprintf(c.App.Writer, "Envelopes are signed with key %s from now on; collectors accept key %s until %s.\n"+
		"If replicas have their own copy of the data directory, copy %s, %s and %s to each now.\n",
		st.Current, st.Previous, st.PreviousUntil.Format(time.RFC3339),
		platform.SigningKeyFile, platform.SigningPreviousFile, platform.SigningPreviousUntilFile)
	return nil
}

// printRotationStatus prints where a rotation (signing key, CA) stands.
func printRotationStatus(c *cli.Context, st platform.RotationStatus) error {
	if c.Bool("json") {
		return writeJSON(c.App.Writer, st)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "current:  %s\n", st.Current)
	if st.Next != "" {
		fmt.Fprintf(w, "next:     %s (announced %s)\n", st.Next, formatSigningTime(st.AnnouncedAt))
	}
	if st.Previous != "" {
		fmt.Fprintf(w, "previous: %s (accepted until %s)\n", st.Previous, formatSigningTime(st.PreviousUntil))
	}
	return nil
}

func formatSigningTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
