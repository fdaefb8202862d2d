package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/adminctl"
)

// clientFlags are the flags of every command that calls the platform.
func clientFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "server", Value: "https://127.0.0.1:8443", EnvVars: []string{envServer}, Usage: "platform URL"},
		&cli.StringFlag{Name: "token", EnvVars: []string{envToken}, Usage: "API token (default: the one `platform login` keeps)"},
		&cli.StringFlag{Name: "ca-file", EnvVars: []string{envCAFile}, Usage: "CA certificate to trust (default <data-dir>/ca.crt if present)"},
		dataDirFlag(),
		&cli.BoolFlag{Name: "json", Usage: "print JSON for machines"},
	}, extra...)
}

// adminClient connects with the client flags.
func adminClient(c *cli.Context) (*api.AdminClient, error) {
	return adminctl.Connect(adminctl.Connection{
		Server: c.String("server"), Token: c.String("token"), TokenFile: loginTokenFile(), DataDir: c.String("data-dir"), CAFile: c.String("ca-file"),
	})
}

func output(c *cli.Context) adminctl.Output {
	return adminctl.Output{W: c.App.Writer, JSON: c.Bool("json")}
}

// withClient wraps an action that needs the admin client; it passes the
// positional arguments, flags written after them applied.
func withClient(action func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, err := lateFlags(c)
		if err != nil {
			return safeError(err)
		}
		ac, err := adminClient(c)
		if err != nil {
			return safeError(err)
		}
		return safeError(action(c, ac, output(c), args))
	}
}

// safeError returns err with its message escaped for a terminal
// (termsafe.String): the platform's refusals can quote what a collector or
// an integration sent. errors.Is and errors.As see err as it is.
func safeError(err error) error {
	if err == nil {
		return nil
	}
	return escapedError{err}
}

type escapedError struct{ err error }

func (e escapedError) Error() string { return termsafe.String(e.err.Error()) }
func (e escapedError) Unwrap() error { return e.err }

// lateFlags applies the flags written after a positional argument (urfave/cli
// v2 stops parsing flags at the first one, so `show ID --json` would not
// work) and returns the positional arguments.
func lateFlags(c *cli.Context) ([]string, error) {
	isBool := map[string]bool{}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		_, b := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			known[n], isBool[n] = true, b
		}
	}
	in, out := c.Args().Slice(), []string(nil)
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			return append(out, in[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			return nil, usageError(c, "flag provided but not defined: %s", a)
		}
		switch {
		case isBool[name] && !hasValue:
			value = "true"
		case !hasValue && i+1 < len(in):
			i++
			value = in[i]
		case !hasValue:
			return nil, usageError(c, "flag needs an argument: %s", a)
		}
		if err := c.Set(name, value); err != nil {
			return nil, usageError(c, "invalid value %q for flag %s: %v", value, a, err)
		}
	}
	return out, nil
}

// oneArg returns the command's single positional argument.
func oneArg(c *cli.Context, args []string, name string) (string, error) {
	if len(args) != 1 {
		return "", usageError(c, "want exactly one argument: %s", name)
	}
	return args[0], nil
}
