package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/collectorhq/collector/internal/env"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/release"
)

func newApp() *cli.App {
	return &cli.App{
		Name:     "collector-release",
		Usage:    "build integration images, and sign and verify container images with a cosign key pair, offline",
		Version:  buildinfo.String(),
		Commands: []*cli.Command{buildCommand, keygenCommand, signCommand, verifyCommand},
		// Errors are reported once, by main, with their exit code.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return cliutil.Exit(cliutil.ExitUsage, err)
		},
	}
}

// registryFlags are shared by sign and verify.
var registryFlags = []cli.Flag{
	&cli.BoolFlag{Name: "insecure", EnvVars: []string{env.ReleaseInsecure}, Usage: "reach the registry over plain HTTP or unverified TLS (a local registry on 127.0.0.1)"},
}

func registryOptions(c *cli.Context) release.Options {
	return release.Options{Insecure: c.Bool("insecure"), UserAgent: "collector-release/" + buildinfo.Version}
}

// oneImage returns the single IMAGE argument.
func oneImage(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", cliutil.Usagef("%s: want one image reference, got %d arguments", c.Command.FullName(), c.NArg())
	}
	return c.Args().First(), nil
}

// password reads the private key's password from COSIGN_PASSWORD (which may
// be set and empty), else asks on the terminal (twice when confirm is set).
func password(confirm bool) ([]byte, error) {
	if p, ok := env.Lookup(release.PasswordEnv); ok {
		return []byte(p), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, cliutil.Usagef("no password: set %s (it may be empty) or run on a terminal", release.PasswordEnv)
	}
	fmt.Fprint(os.Stderr, "Enter password for private key: ")
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil || !confirm {
		return p, err
	}
	fmt.Fprint(os.Stderr, "Enter password for private key again: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, err
	}
	if string(p) != string(again) {
		return nil, cliutil.Usagef("passwords do not match")
	}
	return p, nil
}

// classify maps library errors to exit codes.
func classify(err error) int {
	switch {
	case errors.Is(err, release.ErrBadKey):
		return cliutil.ExitAuth
	case errors.Is(err, release.ErrNoValidSignature):
		return cliutil.ExitConflict
	case errors.Is(err, os.ErrExist):
		return cliutil.ExitConflict
	case errors.Is(err, os.ErrNotExist):
		return cliutil.ExitNotFound
	}
	return 0
}
