package integration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/collectorhq/collector/internal/env"
)

// RunFunc is the body of an integration: it gets the raw config document,
// the Emitter for its records and a logger writing to stderr. Returning an
// error fails the run.
type RunFunc func(ctx context.Context, config []byte, out *Emitter, log *slog.Logger) error

// The integration's modes (docs/integration-contract.md, "Modes").
const (
	// ModeRun collects: records on stdout, exit 0 for a full sync.
	ModeRun = "run"
	// ModeValidate connects and checks access, emits no record, and
	// writes one validation result line.
	ModeValidate = "validate"
)

// Environment variables the runner sets for the integration (never
// secrets): the config file's path and the mode.
const (
	ConfigPathEnv = env.IntegrationConfig
	ModeEnv       = env.IntegrationMode
	RecordsEnv    = env.IntegrationRecords
)

// Invocation is how a program was asked to run: the config file and the
// mode.
type Invocation struct {
	ConfigPath string // DefaultConfigPath when empty
	Mode       string // ModeRun when empty
	// Records is the records channel the runner reads (RecordsEnv): a
	// FIFO records are written to instead of stdout; "" for stdout.
	Records string
}

// ParseInvocation reads the command line (--config PATH, --validate) and
// the environment (ConfigPathEnv, ModeEnv); a flag wins over the
// environment.
func ParseInvocation(args []string, getenv func(string) string) (Invocation, error) {
	inv := Invocation{ConfigPath: getenv(ConfigPathEnv), Mode: getenv(ModeEnv), Records: getenv(RecordsEnv)}
	fs := flag.NewFlagSet("integration", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", "", "the config file (default $"+ConfigPathEnv+", else "+DefaultConfigPath+")")
	validate := fs.Bool("validate", false, "validate: connect and check access, collect nothing")
	if err := fs.Parse(args); err != nil {
		return inv, fmt.Errorf("arguments: %v (usage: [--config FILE] [--validate])", err)
	}
	if fs.NArg() > 0 {
		return inv, fmt.Errorf("arguments: unexpected %q (usage: [--config FILE] [--validate])", fs.Arg(0))
	}
	if *config != "" {
		inv.ConfigPath = *config
	}
	if *validate {
		inv.Mode = ModeValidate
	}
	switch inv.Mode {
	case "", ModeRun, ModeValidate:
	default:
		return inv, fmt.Errorf("%s=%q: want %q or %q", ModeEnv, inv.Mode, ModeRun, ModeValidate)
	}
	return inv, nil
}

// Main runs an integration as a program and exits: it reads its
// invocation (ParseInvocation on os.Args and the environment), then runs
// Execute with stdout and stderr. SIGINT and SIGTERM cancel ctx.
func Main(name string, run RunFunc, opts ...Option) {
	inv, err := ParseInvocation(os.Args[1:], env.Get)
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("integration", name).Error("integration failed", "err", err)
		os.Exit(ExitUsage)
	}
	if proxy, err := useEgress(EgressPath, http.DefaultTransport); err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("integration", name).Error("integration failed", "err", err)
		os.Exit(ExitFailed)
	} else if proxy != "" {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("integration", name).Info("HTTP requests go through the collector's proxy", "proxy", proxy)
	}
	os.Exit(Execute(name, inv, os.Stdout, os.Stderr, run, opts...))
}

// Run runs a collection with the config at configPath, as Main does, for
// tests; it returns the exit code.
func Run(name, configPath string, stdout, stderr io.Writer, run RunFunc, opts ...Option) int {
	return Execute(name, Invocation{ConfigPath: configPath}, stdout, stderr, run, opts...)
}

// Execute runs the integration as inv asks and returns its exit code. A
// collection calls run with an Emitter on stdout, flushes it, and exits 0
// on success; a validation calls the WithValidate function and writes its
// result line. A failure is logged and its error mapped to an exit code
// (ExitOn, ExitCoder, the SDK's errors).
func Execute(name string, inv Invocation, stdout, stderr io.Writer, run RunFunc, opts ...Option) int {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("integration", name)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if inv.Mode == ModeValidate {
		return o.runValidate(ctx, inv.ConfigPath, stdout, log)
	}
	config, err := ReadConfig(inv.ConfigPath)
	if err != nil {
		return o.fail(log, err, 0)
	}
	w, closeRecords := recordsOut(inv.Records, stdout, log)
	out := NewEmitter(w)
	err = run(ctx, config, out, log)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if cerr := closeRecords(); err == nil {
		err = cerr
	}
	if err != nil {
		return o.fail(log, err, out.Count())
	}
	log.Info("integration finished", "records", out.Count())
	return ExitOK
}

// fail logs a failed run and returns its exit code.
func (o *options) fail(log *slog.Logger, err error, records int64) int {
	code := o.exitCode(err)
	log.Error("integration failed", "records", records, "exit", code, "reason", ReasonOf(code), "err", err)
	return code
}

// errNoValidate: the integration was asked to validate and has no
// validate mode.
var errNoValidate = errors.New("this integration has no validate mode (its manifest says validation.supported: false)")

// recordsOut is where records go: the runner's records channel when it
// gives one (a FIFO it reads directly, past the container engine's log
// path), else stdout. A channel that cannot be opened is logged and
// stdout used: the runner reads both.
func recordsOut(path string, stdout io.Writer, log *slog.Logger) (io.Writer, func() error) {
	if path == "" {
		return stdout, func() error { return nil }
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		log.Warn("the records channel cannot be opened: writing records to stdout", "err", err)
		return stdout, func() error { return nil }
	}
	return f, f.Close
}
