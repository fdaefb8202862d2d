package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/logging"
	"github.com/collectorhq/collector/trust"
)

func newApp() *cli.App {
	return &cli.App{
		Name:    "collector",
		Usage:   "run data-collection integrations behind the firewall",
		Version: buildinfo.String(),
		Flags:   logging.Flags,
		Commands: []*cli.Command{installCommand, daemonCommand, runnerCommand, healthCommand,
			statusCommand, logsCommand, doctorCommand, bundleCommand, uninstallCommand, engineCommand, runLocalCommand, keysCommand},
		// Errors are reported once, by main, with their exit code.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// classify maps library errors to exit codes.
func classify(err error) int {
	if code := classifyOps(err); code != 0 {
		return code
	}
	switch {
	case errors.Is(err, engine.ErrUnavailable):
		return cliutil.ExitUnavailable
	case errors.Is(err, engine.ErrNotFound):
		return cliutil.ExitNotFound
	case errors.Is(err, engine.ErrConflict), errors.Is(err, engine.ErrSecretDirNotTmpfs),
		errors.Is(err, trust.ErrInsecurePolicy), errors.Is(err, trust.ErrUnapprovedKey),
		errors.Is(err, trust.ErrNoSignatureRequirement), errors.Is(err, trust.ErrUnsupportedRequirement):
		// Refused as things stand on the host: the message says what to change.
		return cliutil.ExitConflict
	}
	return 0
}
