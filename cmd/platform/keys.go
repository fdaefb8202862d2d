package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/adminctl"
)

// keysCommand rotates the at-rest data key on the platform's host
// (docs/auth.md, "Rotating the data key"): add a key to every replica's
// key file, promote it, rotate, then remove the old key; a rolling restart
// of the replicas after each change of the file.
var keysCommand = &cli.Command{
	Name:  "keys",
	Usage: "rotate the at-rest data key (on the platform's host: needs the key file and, for status and rotate, the database)",
	Subcommands: []*cli.Command{
		{Name: "add", Usage: "add a new random key to the key file (created if missing); it only reads until promoted, unless --current",
			Flags: keyFileFlags(&cli.BoolFlag{Name: "current", Usage: "make it the current key at once (one replica only: the others could not read what it seals)"}),
			Action: keysEdit(func(c *cli.Context, path string, _ []string) (string, error) {
				id, err := platform.AddDataKey(path, c.Bool("current"))
				if err != nil {
					return "", err
				}
				if c.Bool("current") {
					return fmt.Sprintf("Added key %s to %s as the current key. Restart the platform, then run `platform keys rotate`.", id, path), nil
				}
				return fmt.Sprintf("Added key %s to %s: it reads, it does not seal yet. Give every replica this file and restart them one by one, "+
					"then run `platform keys promote %s`.", id, path, id), nil
			})},
		{Name: "promote", Usage: "make a key of the file the current one (the key that seals and MACs)", ArgsUsage: "KEY-ID",
			Flags: keyFileFlags(), Action: keysEdit(func(c *cli.Context, path string, args []string) (string, error) {
				id, err := oneArg(c, args, "KEY-ID")
				if err != nil {
					return "", err
				}
				if err := platform.PromoteDataKey(path, id); err != nil {
					return "", err
				}
				return fmt.Sprintf("Key %s is the current key of %s. Give every replica this file and restart them one by one, "+
					"then run `platform keys rotate`.", id, path), nil
			})},
		{Name: "remove", Usage: "remove a key from the file, once `platform keys status` shows nothing under it", ArgsUsage: "KEY-ID",
			Flags: keyFileFlags(), Action: keysEdit(func(c *cli.Context, path string, args []string) (string, error) {
				id, err := oneArg(c, args, "KEY-ID")
				if err != nil {
					return "", err
				}
				if err := platform.RemoveDataKey(path, id); err != nil {
					return "", err
				}
				return fmt.Sprintf("Removed key %s from %s. Give every replica this file and restart them one by one: "+
					"a value still under that key no longer opens.", id, path), nil
			})},
		{Name: "status", Usage: "count, for each kind of sealed value and MAC'd row, the values under each key of the ring",
			Flags: hostFlags(), Action: withKeys(keysStatus)},
		{Name: "rotate", Usage: "re-seal and re-MAC everything under the current key, in short batches, while the platform runs; re-run to continue",
			Flags: hostFlags(&cli.IntFlag{Name: "batch", Value: 500, Usage: "rows per transaction"}), Action: withKeys(keysRotate)},
		keysSigningCommand,
		keysCACommand,
	},
}

// keyFileFlags are the flags of the commands that edit the key file.
func keyFileFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{dataDirFlag(), dataKeyFileFlag()}, extra...)
}

// keysEdit runs an edit of the key file --data-key-file (else
// <data-dir>/data.key) names and prints what it says.
func keysEdit(edit func(c *cli.Context, path string, args []string) (string, error)) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, err := lateFlags(c)
		if err != nil {
			return err
		}
		cfg := platform.DefaultConfig()
		cfg.DataDir = c.String("data-dir")
		cfg.DataKeyFile = c.String("data-key-file")
		msg, err := edit(c, platform.DataKeyPath(cfg), args)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, msg)
		return nil
	}
}

// dataKeyFileFlag is databaseFlags' --data-key-file, for the commands
// that need the key file but not the database.
func dataKeyFileFlag() cli.Flag {
	for _, f := range databaseFlags() {
		if f.Names()[0] == "data-key-file" {
			return f
		}
	}
	panic("databaseFlags has no --data-key-file")
}

// keysEnv is the key ring and the store of the host's platform.
type keysEnv struct {
	dd  *platform.DataDir
	b   platform.Backends
	out io.Writer
}

func withKeys(action func(c *cli.Context, k *keysEnv) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, err := lateFlags(c)
		if err != nil {
			return err
		}
		if len(args) > 0 {
			return usageError(c, "takes no argument, got %q", args[0])
		}
		hp, err := openHostPlatform(c, nil)
		if err != nil {
			return err
		}
		defer hp.close()
		return safeError(action(c, &keysEnv{dd: hp.dd, b: hp.b, out: c.App.Writer}))
	}
}

func keysStatus(c *cli.Context, k *keysEnv) error {
	rep, err := platform.DataKeyStatus(c.Context, k.b.Store, k.dd.Keys)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(k.out, rep)
	}
	if err := printKeyReport(k.out, rep); err != nil {
		return err
	}
	if n := rep.Behind(); n > 0 {
		fmt.Fprintf(k.out, "%d values are not under the current key %s: run `platform keys rotate`.\n", n, rep.Keys[0])
	} else {
		fmt.Fprintf(k.out, "Everything is under the current key %s: nothing needs the other keys of the file.\n", rep.Keys[0])
	}
	return nil
}

func keysRotate(c *cli.Context, k *keysEnv) error {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	rot, err := platform.RotateDataKey(c.Context, k.b.Store, k.dd.Keys, platform.RotateOptions{
		Batch: c.Int("batch"), Actor: "host:" + who + "@" + host})
	if c.Bool("json") {
		if jerr := writeJSON(k.out, rot); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		fmt.Fprintf(k.out, "Moved %d values to key %s.\n", rot.Done.Moved(), rot.Done.Keys[0])
		for _, s := range rot.Done.Sealed {
			for _, id := range s.Failed {
				fmt.Fprintf(k.out, "Does not open, left as it is: %s of %s\n", s.Kind, termsafe.String(id))
			}
		}
		if err == nil {
			err = printKeyReport(k.out, rot.After)
		}
	}
	if err != nil {
		return err
	}
	if n := rot.After.Behind(); n > 0 {
		return cliutil.Exit(cliutil.ExitFailure, fmt.Errorf("%d values are still not under key %s: a replica still writing under an older key "+
			"(restart every replica with the new key file), or values that open under no key of the ring; run `platform keys rotate` again", n, rot.After.Keys[0]))
	}
	if !c.Bool("json") {
		fmt.Fprintf(k.out, "Everything is under key %s: with every replica running it as the current key, `platform keys remove` the old key "+
			"and restart the replicas one by one.\n", rot.After.Keys[0])
	}
	return nil
}

// printKeyReport writes a table: a row per kind, a column per key.
func printKeyReport(w io.Writer, rep platform.KeyReport) error {
	header := []string{"KIND"}
	for i, id := range rep.Keys {
		if i == 0 {
			id += " (current)"
		}
		header = append(header, id)
	}
	header = append(header, "NO KEY ID", "UNREADABLE")
	t := adminctl.Output{W: w}.Table(header...)
	row := func(kind string, byKey []int, noID string, bad int) {
		cells := []string{kind}
		for _, n := range byKey {
			cells = append(cells, strconv.Itoa(n))
		}
		t.Row(append(cells, noID, strconv.Itoa(bad))...)
	}
	for _, s := range rep.Sealed {
		row(string(s.Kind), s.ByKey, strconv.Itoa(s.NoKeyID), s.NotInRing)
	}
	for _, m := range rep.MACs {
		row(string(m.Kind)+" (MAC)", m.ByKey, "-", m.Unverified)
	}
	return t.Flush()
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(termsafe.JSON(b), '\n'))
	return err
}
