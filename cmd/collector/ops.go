package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/health"
	"github.com/collectorhq/collector/collector/ops"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/auto"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/termsafe"
)

// The operator commands. Exit codes (docs/operations.md):
//
//	0 all is well (status), nothing failed (doctor), done (the others)
//	1 status: something is wrong; doctor: a check failed; any other failure
//	2 usage
//	3 the engine does not answer
//	4 not installed (no config), or no such logs
//	5 uninstall --deregister refused by the platform (integrations assigned)
//	6 uninstall --deregister: no API token, or a refused one

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "machine-readable output"}

var hostRootFlag = &cli.StringFlag{Name: "host-root", Value: "/", EnvVars: []string{env.HostRoot},
	Usage: "where this command sees the host's / for its systemd and Quadlet units (/ on the host; where it is mounted, read-only, in a container)"}

var opsFlags = append([]cli.Flag{dirFlag, hostRootFlag,
	&cli.StringFlag{Name: "state-dir", Value: config.DefaultStateDir, EnvVars: []string{env.StateDir}, Usage: "the state dir, when the config cannot say"},
}, engineFlags...)

// opsEnv reads the config's engine settings (flags win) and opens the
// engine; an engine that does not answer is reported by the commands,
// not refused here.
func opsEnv(c *cli.Context) *ops.Env {
	e := &ops.Env{Dir: c.String("config-dir"), StateDir: c.String("state-dir"), HostRoot: c.String("host-root")}
	ec := engineConfig(c)
	if cfg, _, err := config.Load(e.Dir); err == nil {
		if ec.Host == "" && cfg.Engine.Socket != "" {
			ec.Host = "unix://" + cfg.Engine.Socket
		}
		if ec.Kind == "" {
			ec.Kind = engine.Kind(cfg.Engine.Kind)
		}
		if !c.IsSet("secret-dir") && cfg.Engine.SecretDir != "" {
			ec.SecretDir = cfg.Engine.SecretDir
		}
	}
	e.EngineSocket = strings.TrimPrefix(ec.Host, "unix://")
	if e.EngineSocket == "" {
		e.EngineSocket = "(the default sockets)"
	}
	e.Engine, e.EngineErr = auto.Open(c.Context, ec)
	return e
}

func closeEnv(e *ops.Env) {
	if e.Engine != nil {
		e.Engine.Close()
	}
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(termsafe.JSON(append(b, '\n')))
	return err
}

var statusCommand = &cli.Command{
	Name:  "status",
	Usage: "enrollment, platform, engine, the collector's containers (state, health, image, version) and running jobs",
	Description: "Exit 0 when all is well, 1 when something is wrong (listed as problems), " +
		"3 when the engine does not answer, 4 when no collector is installed.",
	Flags: append([]cli.Flag{jsonFlag}, opsFlags...),
	Action: func(c *cli.Context) error {
		e := opsEnv(c)
		defer closeEnv(e)
		s, err := ops.GetStatus(c.Context, e)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			if err := writeJSON(c.App.Writer, s); err != nil {
				return err
			}
		} else {
			ops.WriteStatus(c.App.Writer, s)
		}
		switch {
		case !s.Engine.Reachable:
			return cliutil.Exit(cliutil.ExitUnavailable, fmt.Errorf("%w at %s", ops.ErrEngine, s.Engine.Socket))
		case len(s.Problems) > 0:
			return cliutil.Exit(cliutil.ExitFailure, fmt.Errorf("%d problem(s): %s", len(s.Problems), strings.Join(s.Problems, "; ")))
		}
		return nil
	},
}

var logsCommand = &cli.Command{
	Name:      "logs",
	Usage:     "the daemon's or runner's logs, or a recent job's (redacted)",
	ArgsUsage: "daemon|runner|JOB_ID",
	Description: "A job's logs are the copy the runner kept on this host of what it uploaded (the newest 20 jobs), redacted of the job's secrets. " +
		"Exit 0, 3 when the engine does not answer, 4 when there are no such logs.",
	Flags: append([]cli.Flag{
		&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep reading (a job's logs: until it ends)"},
		&cli.StringFlag{Name: "since", Usage: "from this time on: a duration back (10m) or a time (RFC 3339)"},
		&cli.IntFlag{Name: "tail", Usage: "the last lines only"},
	}, opsFlags...),
	Action: func(c *cli.Context) error {
		args, err := lateFlags(c)
		if err != nil {
			return err
		}
		if len(args) != 1 {
			return cliutil.Usagef("collector logs daemon|runner|JOB_ID: name one")
		}
		since, err := parseSince(c.String("since"), time.Now())
		if err != nil {
			return cliutil.Usagef("--since %q: %v", c.String("since"), err)
		}
		e := opsEnv(c)
		defer closeEnv(e)
		return ops.Logs(c.Context, e, ops.LogsOptions{Target: args[0], Follow: c.Bool("follow"), Since: since, Tail: c.Int("tail")}, c.App.Writer)
	},
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339, s)
}

var doctorCommand = &cli.Command{
	Name:  "doctor",
	Usage: "check what a collector needs, each pass, warn or fail with the fix",
	Description: "Checks the config and its modes, the engine socket, runtime and cgroups, SELinux and labels, " +
		"DNS/TCP/TLS to the platform with the pinned CA, the clock against the platform, the registry and the signature policy, " +
		"container storage space, leftover jobs, the collector's containers and their health, that it comes back after a reboot, and log bounds. " +
		"Exit 0 when nothing fails (warnings allowed), 1 when a check fails.",
	Flags: append([]cli.Flag{jsonFlag}, opsFlags...),
	Action: func(c *cli.Context) error {
		e := opsEnv(c)
		defer closeEnv(e)
		r := ops.Doctor(c.Context, e)
		if c.Bool("json") {
			if err := writeJSON(c.App.Writer, r); err != nil {
				return err
			}
		} else {
			ops.WriteReport(c.App.Writer, r)
		}
		if r.Failed > 0 {
			return cliutil.Exit(cliutil.ExitFailure, fmt.Errorf("%d check(s) failed", r.Failed))
		}
		return nil
	},
}

var bundleCommand = &cli.Command{
	Name:  "support-bundle",
	Usage: "write a tar.gz for support: versions, status, doctor, redacted logs, the containers' descriptions; never a key, token, secret or config value",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "the file to write (default collector-support-TIME.tar.gz here; - for stdout)"},
		jsonFlag,
	}, opsFlags...),
	Action: func(c *cli.Context) error {
		e := opsEnv(c)
		defer closeEnv(e)
		name := c.String("output")
		if name == "" {
			name = ops.DefaultBundleName(time.Now())
		}
		var w io.Writer = c.App.Writer
		var f *os.File
		if name != "-" {
			var err error
			if f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		files, err := ops.SupportBundle(c.Context, e, w)
		if err != nil {
			return err
		}
		if f != nil {
			if err := f.Close(); err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, map[string]any{"file": name, "contents": files})
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%d files: %s)\n", name, len(files), strings.Join(files, ", "))
		}
		return nil
	},
}

var uninstallCommand = &cli.Command{
	Name:  "uninstall",
	Usage: "stop and remove the daemon, runner, job containers and job secrets (--purge: and the config and state dirs)",
	Description: "--deregister first has the platform delete the collector, with an operator's API token read from stdin or --token-file; " +
		"the platform refuses while integrations are assigned to it, and then nothing is removed. Run twice, it says nothing is left. " +
		"Exit 0, 3 when the engine does not answer, 5 when the platform refuses, 6 when the token is missing or refused.",
	Flags: append([]cli.Flag{
		&cli.BoolFlag{Name: "purge", Usage: "also remove the config dir and the state dir"},
		&cli.BoolFlag{Name: "deregister", Usage: "have the platform delete the collector first"},
		&cli.StringFlag{Name: "token-file", Usage: "read the API token for --deregister from this file (default: stdin)"},
	}, opsFlags...),
	Action: func(c *cli.Context) error {
		e := opsEnv(c)
		defer closeEnv(e)
		var tok io.Reader = os.Stdin
		if p := c.String("token-file"); p != "" {
			f, err := os.Open(p)
			if err != nil {
				return cliutil.Exit(cliutil.ExitAuth, err)
			}
			defer f.Close()
			tok = f
		}
		_, err := ops.Uninstall(c.Context, e, ops.UninstallOptions{Purge: c.Bool("purge"), Deregister: c.Bool("deregister"), Token: tok, Out: c.App.Writer})
		return err
	},
}

var healthCommand = &cli.Command{
	Name:   "health",
	Usage:  "the health check of the collector's containers: exit 0 when this container's role made progress recently",
	Hidden: false,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "file", Value: health.File, Usage: "the role's health status file"},
	},
	Action: func(c *cli.Context) error {
		// A test image (env.TestUnhealthy=runner) whose runner must never
		// be healthy: the upgrade e2e's image to roll back.
		if role := env.Get(env.TestUnhealthy); role != "" {
			if s, err := health.Read(c.String("file")); err == nil && s.Role == role {
				return cliutil.Exit(cliutil.ExitFailure, fmt.Errorf("%s unhealthy by design (%s is set: a test image)", role, env.TestUnhealthy))
			}
		}
		line, err := health.Check(c.String("file"), time.Now())
		if err != nil {
			return cliutil.Exit(cliutil.ExitFailure, err)
		}
		fmt.Fprintln(c.App.Writer, line)
		return nil
	},
}

// classifyOps maps the operator commands' errors to exit codes.
func classifyOps(err error) int {
	switch {
	case errors.Is(err, ops.ErrEngine):
		return cliutil.ExitUnavailable
	case errors.Is(err, ops.ErrNotInstalled), errors.Is(err, ops.ErrNoSuchLogs):
		return cliutil.ExitNotFound
	case errors.Is(err, ops.ErrDeregisterRefused):
		return cliutil.ExitConflict
	case errors.Is(err, ops.ErrAuth):
		return cliutil.ExitAuth
	}
	return 0
}
