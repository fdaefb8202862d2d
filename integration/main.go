package integration

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// RunFunc is the body of an integration: it gets the raw config document,
// the Emitter for its records and a logger writing to stderr. Returning an
// error fails the run.
type RunFunc func(ctx context.Context, config []byte, out *Emitter, log *slog.Logger) error

// Main runs an integration as a program: it reads DefaultConfigPath, calls
// run with stdout and stderr, flushes the records and exits 0 on success,
// 1 on failure (after logging the error). SIGINT and SIGTERM cancel ctx.
func Main(name string, run RunFunc) {
	os.Exit(Run(name, DefaultConfigPath, os.Stdout, os.Stderr, run))
}

// Run is Main with the config path and streams given, for tests; it returns
// the exit code.
func Run(name, configPath string, stdout, stderr io.Writer, run RunFunc) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("integration", name)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	config, err := ReadConfig(configPath)
	if err != nil {
		log.Error("integration failed", "err", err)
		return 1
	}
	out := NewEmitter(stdout)
	err = run(ctx, config, out, log)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		log.Error("integration failed", "records", out.Count(), "err", err)
		return 1
	}
	log.Info("integration finished", "records", out.Count())
	return 0
}
