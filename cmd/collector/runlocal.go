package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/collector/runlocal"
	"github.com/collectorhq/collector/engine/auto"
	"github.com/collectorhq/collector/internal/cliutil"
)

// errRunFailed: the integration ran and failed (the summary says how).
var errRunFailed = errors.New("the run failed")

var runLocalCommand = &cli.Command{
	Name:  "run-local",
	Usage: "run an integration image once, hardened as the runner runs it, without a platform; print its records summary and refusals",
	Description: "The config is handed over as the runner hands it (a 0400 secret at /run/collector/config.json), the container is the " +
		"runner's (no capabilities, no new privileges, read-only root, the manifest's limits), and stdout is checked line by line " +
		"as the runner checks it. Exit 0 means the runner would take the run as a complete sync (or a passed validation).",
	ArgsUsage: "IMAGE",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "the integration's config, a JSON file (\"-\" reads stdin)"},
		&cli.BoolFlag{Name: "validate", Usage: "run the integration's validate mode: connect and check access, collect nothing"},
		&cli.StringFlag{Name: "network", Usage: "network of the container: none, host, or a network name (default: none if the manifest needs none, else the engine's)"},
		&cli.DurationFlag{Name: "timeout", Usage: "stop the run after this long (default: the manifest's)"},
		&cli.BoolFlag{Name: "pull", Usage: "pull the image even when the engine has it"},
		&cli.StringSliceFlag{Name: "insecure-registry", Usage: "registry reached over plain HTTP, host:port (repeat)"},
		&cli.StringFlag{Name: "records", Usage: "write the valid records to this file (\"-\" for stdout)"},
		&cli.BoolFlag{Name: "quiet", Usage: "do not print the integration's logs (its stderr)"},
		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
	}, engineFlags...),
	Action: runLocal,
}

func runLocal(c *cli.Context) error {
	// `run-local IMAGE --config FILE`: flags may follow the image.
	pos, err := lateFlags(c)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cliutil.Usagef("run-local: want one image, got %d arguments", len(pos))
	}
	if c.String("config") == "" {
		return cliutil.Usagef("run-local: --config FILE is required")
	}
	cfg, err := readConfigArg(c.String("config"))
	if err != nil {
		return err
	}
	eng, err := auto.Open(c.Context, engineConfig(c))
	if err != nil {
		return err
	}
	defer eng.Close()
	o := runlocal.Options{Image: pos[0], Config: cfg, Validate: c.Bool("validate"), Network: c.String("network"),
		Timeout: c.Duration("timeout"), Pull: c.Bool("pull"), InsecureRegistries: c.StringSlice("insecure-registry"), Logs: c.App.ErrWriter}
	if c.Bool("quiet") {
		o.Logs = nil
	}
	if p := c.String("records"); p != "" {
		f := os.Stdout
		if p != "-" {
			if f, err = os.Create(p); err != nil {
				return err
			}
			defer f.Close()
		}
		o.Records = f
	}
	res, err := runlocal.Run(c.Context, eng, o)
	if err != nil {
		if errors.Is(err, runlocal.ErrRefused) {
			return cliutil.Exit(cliutil.ExitConflict, err)
		}
		return err
	}
	out := c.App.Writer
	if o.Records == os.Stdout {
		out = c.App.ErrWriter
	}
	if c.Bool("json") {
		json.NewEncoder(out).Encode(res)
	} else {
		res.Print(out)
	}
	if !res.OK() {
		return cliutil.Exit(cliutil.ExitFailure, errRunFailed)
	}
	return nil
}

// readConfigArg reads the config file ("-": stdin) and checks it is JSON.
func readConfigArg(path string) ([]byte, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if !json.Valid(data) || !strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
		return nil, cliutil.Usagef("config %s: want a JSON object", path)
	}
	return data, nil
}

// lateFlags applies the command's flags written after its positional
// arguments (urfave/cli v2 stops at the first one) and returns the
// positional arguments.
func lateFlags(c *cli.Context) ([]string, error) {
	takesValue := map[string]bool{}
	for _, f := range c.Command.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	in, pos := c.Args().Slice(), []string(nil)
	for i := 0; i < len(in); i++ {
		a := in[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		isValue, known := takesValue[name]
		switch {
		case a == "--":
			return append(pos, in[i+1:]...), nil
		case !strings.HasPrefix(a, "-") || a == "-":
			pos = append(pos, a)
			continue
		case !known:
			return nil, cliutil.Usagef("run-local: unknown flag %s", a)
		case !isValue && !hasValue:
			value = "true"
		case !hasValue:
			if i+1 >= len(in) {
				return nil, cliutil.Usagef("run-local: flag %s needs a value", a)
			}
			i++
			value = in[i]
		}
		if err := c.Set(name, value); err != nil {
			return nil, cliutil.Usagef("run-local: flag %s: %v", a, err)
		}
	}
	return pos, nil
}
