package cliutil

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Main runs app with os.Args until it returns or SIGINT/SIGTERM cancels its
// context, reports its error once on stderr and exits with its code.
func Main(app *cli.App, classify ...Classifier) {
	MainArgs(app, os.Args, classify...)
}

// MainArgs is Main with the arguments given (Interspersed ones, say).
func MainArgs(app *cli.App, args []string, classify ...Classifier) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.RunContext(ctx, args)
	stop()
	os.Exit(Report(os.Stderr, app.Name, err, classify...))
}
