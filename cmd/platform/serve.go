package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/logging"
	"github.com/collectorhq/collector/platform"
)

var serveDefaults = platform.DefaultConfig()

func dataDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Value: serveDefaults.DataDir, EnvVars: []string{envDataDir},
		Usage: "directory of the CA, keys, admin token and database (0700)"}
}

var serveCommand = &cli.Command{
	Name:  "serve",
	Usage: "run the platform's HTTPS server",
	Description: "On first start, creates in --data-dir: a CA and server certificate (unless --tls-cert is given),\n" +
		"the one-time setup link of the first administrator (setup-link, 0600), the job-signing key and the at-rest data key.\n" +
		"Logs the CA pin and the setup link.",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "listen", Value: serveDefaults.Listen, EnvVars: []string{envListen}, Usage: "host:port to listen on"},
		dataDirFlag(),
		&cli.StringFlag{Name: "public-url", EnvVars: []string{envPublicURL}, Usage: "URL collectors reach the platform at (default https://<listen>)"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: []string{envTLSCert}, Usage: "PEM certificate chain (default: generated from a local CA)"},
		&cli.StringFlag{Name: "tls-key", EnvVars: []string{envTLSKey}, Usage: "PEM private key of --tls-cert"},
		&cli.StringFlag{Name: "collector-image", Value: serveDefaults.CollectorImage, EnvVars: []string{envCollectorImage}, Usage: "collector image the install commands run"},
		&cli.DurationFlag{Name: "heartbeat-interval", Value: serveDefaults.HeartbeatInterval, EnvVars: []string{envHeartbeatInterval}, Usage: "heartbeat interval collectors are told to use"},
		&cli.DurationFlag{Name: "enrollment-token-ttl", Value: serveDefaults.EnrollmentTokenTTL, EnvVars: []string{envEnrollmentTTL}, Usage: "lifetime of an enrollment token"},
		&cli.DurationFlag{Name: "collector-key-grace", Value: serveDefaults.CollectorKeyGrace, EnvVars: []string{envCollectorKeyGrace}, Usage: "how long a collector's identity key is still accepted after a key rotation replaced it (0 to 168h)"},
		&cli.StringFlag{Name: "image-policy", EnvVars: []string{envImagePolicy}, Usage: "containers/image policy.json (sigstoreSigned) collectors verify every image against; sent at enrollment"},
		&cli.DurationFlag{Name: "lease-ttl", Value: serveDefaults.Queue.LeaseTTL, EnvVars: []string{envLeaseTTL}, Usage: "how long a job lease lasts unless the runner renews it"},
		&cli.IntFlag{Name: "max-attempts", Value: serveDefaults.Queue.MaxAttempts, EnvVars: []string{envMaxAttempts}, Usage: "leases a job gets before it is dead"},
		&cli.Int64Flag{Name: "job-memory", Value: serveDefaults.JobLimits.MemoryBytes, EnvVars: []string{envJobMemory}, Usage: "memory limit of a job container, bytes"},
		&cli.Float64Flag{Name: "job-cpus", Value: serveDefaults.JobLimits.CPUs, EnvVars: []string{envJobCPUs}, Usage: "CPU limit of a job container, cores (also the most a job is predicted to need)"},
		&cli.IntFlag{Name: "max-jobs-per-collector", Value: serveDefaults.Jobs.MaxJobsPerCollector, EnvVars: []string{envMaxJobsPerCollector}, Usage: "jobs one collector runs at once at most, whatever fits (0: capacity alone decides)"},
		&cli.DurationFlag{Name: "job-timeout", Value: time.Duration(serveDefaults.JobLimits.TimeoutSec) * time.Second, EnvVars: []string{envJobTimeout}, Usage: "how long a job may run"},
		&cli.DurationFlag{Name: "job-retention", Value: serveDefaults.JobRetention, EnvVars: []string{envJobRetention}, Usage: "how long finished jobs and their logs are kept (0: forever)"},
		&cli.BoolFlag{Name: "metrics-public", EnvVars: []string{envMetricsPublic}, Usage: "serve /metrics without a token (trusted networks only)"},
		&cli.StringSliceFlag{Name: "insecure-registry", EnvVars: []string{envInsecureRegistries}, Usage: "registry (host:port) reached over plain HTTP when an integration's image is checked (loopback registries always are)"},
		&cli.BoolFlag{Name: "no-image-check", EnvVars: []string{envNoImageCheck}, Usage: "do not verify an integration's image against --image-policy and its registry when it is saved (collectors still verify before every run)"},
		&cli.StringFlag{Name: "min-collector-version", EnvVars: []string{envMinCollectorVersion}, Usage: "refuse collector upgrades to an image whose version label is below this (e.g. 1.4.0)"},
		&cli.BoolFlag{Name: "require-mfa", EnvVars: []string{envRequireMFA}, Usage: "require a second factor of every user (admins always need one)"},
	}, databaseFlags()...),
	Action: func(c *cli.Context) error {
		log, err := logging.FromContext(c)
		if err != nil {
			return cliutil.Exit(cliutil.ExitUsage, err)
		}
		cfg := serveDefaults
		cfg.Listen, cfg.DataDir = c.String("listen"), c.String("data-dir")
		databaseConfig(c, &cfg)
		cfg.PublicURL, cfg.TLSCert, cfg.TLSKey = c.String("public-url"), c.String("tls-cert"), c.String("tls-key")
		cfg.CollectorImage = c.String("collector-image")
		cfg.HeartbeatInterval, cfg.EnrollmentTokenTTL = c.Duration("heartbeat-interval"), c.Duration("enrollment-token-ttl")
		cfg.CollectorKeyGrace = c.Duration("collector-key-grace")
		cfg.Queue.LeaseTTL, cfg.Queue.MaxAttempts = c.Duration("lease-ttl"), c.Int("max-attempts")
		cfg.JobLimits.MemoryBytes, cfg.JobLimits.TimeoutSec = c.Int64("job-memory"), int64(c.Duration("job-timeout")/time.Second)
		cfg.JobLimits.CPUs, cfg.Jobs.MaxJobsPerCollector = c.Float64("job-cpus"), c.Int("max-jobs-per-collector")
		cfg.JobRetention, cfg.MetricsPublic = c.Duration("job-retention"), c.Bool("metrics-public")
		cfg.Access.RequireMFAForAll = c.Bool("require-mfa")
		cfg.MinCollectorVersion = c.String("min-collector-version")
		cfg.InsecureRegistries, cfg.VerifyImages = c.StringSlice("insecure-registry"), !c.Bool("no-image-check")
		if p := c.String("image-policy"); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return cliutil.Exit(cliutil.ExitUsage, fmt.Errorf("--image-policy: %w", err))
			}
			cfg.ImagePolicy = b
		} else {
			log.Warn("no --image-policy: collectors cannot enroll until the platform has an image signature policy to give them")
		}
		return serve(c.Context, cfg, log)
	},
}

// serve opens the store the config names and runs the server until ctx ends.
func serve(ctx context.Context, cfg platform.Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return cliutil.Exit(cliutil.ExitUsage, err)
	}
	dd, err := platform.OpenDataDir(cfg, log)
	if err != nil {
		return fmt.Errorf("start platform: %w", err)
	}
	b, closeBackends, err := openBackends(ctx, cfg, dd, log)
	if err != nil {
		return err
	}
	defer closeBackends()
	var opts []platform.Option
	if v := env.Get(env.TestPlatformClockOffset); v != "" {
		off, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", env.TestPlatformClockOffset, v, err)
		}
		log.Warn("TEST: the platform's clock is moved", "offset", off.String(), "env", env.TestPlatformClockOffset)
		opts = append(opts, platform.WithClock(func() time.Time { return time.Now().Add(off) }))
	}
	srv, err := platform.New(ctx, cfg, dd, b, log, opts...)
	if err != nil {
		return fmt.Errorf("start platform: %w", err)
	}
	return srv.Run(ctx)
}
