package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/platform/store/sqlite"
)

// databaseFlags are the flags of every command that opens the database
// and the data directory's keys.
func databaseFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "database", EnvVars: []string{envDatabase},
			Usage: "SQLite database file (default <data-dir>/platform.db), or a postgres:// URL (password from PGPASSFILE or PGPASSWORD, not the URL: a command line is visible to every user)"},
		&cli.IntFlag{Name: "database-max-conns", EnvVars: []string{envDatabaseMaxConns},
			Usage: "connections this process keeps to PostgreSQL at most (0: twice the CPUs, at least 8)"},
		&cli.StringFlag{Name: "data-key-file", EnvVars: []string{envDataKeyFile},
			Usage: "at-rest data keys (0600; one base64 key per line, the first seals) instead of <data-dir>/data.key; every replica on one PostgreSQL database is given the same file"},
	}
}

// databaseConfig reads databaseFlags into cfg.
func databaseConfig(c *cli.Context, cfg *platform.Config) {
	cfg.Database, cfg.DatabaseMaxConns, cfg.DataKeyFile = c.String("database"), c.Int("database-max-conns"), c.String("data-key-file")
}

// hostPlatform is this host's platform as the commands that act on its
// data directory and database directly see it (platform keys, users,
// sso): its config from their flags, its data directory and backends.
type hostPlatform struct {
	cfg   platform.Config
	dd    *platform.DataDir
	b     platform.Backends
	log   *slog.Logger
	close func() error
}

// openHostPlatform opens the data directory and the database the flags
// name, edit (if any) completing the config first.
func openHostPlatform(c *cli.Context, edit func(*platform.Config)) (*hostPlatform, error) {
	cfg := platform.DefaultConfig()
	cfg.DataDir = c.String("data-dir")
	databaseConfig(c, &cfg)
	if edit != nil {
		edit(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dd, err := platform.OpenDataDir(cfg, log)
	if err != nil {
		return nil, cliutil.Exit(cliutil.ExitFailure, fmt.Errorf("open the data directory %s (run this on the platform's host, as its user): %w", cfg.DataDir, err))
	}
	b, closeBackends, err := openBackends(c.Context, cfg, dd, log)
	if err != nil {
		return nil, err
	}
	// A host command's act (a user created, second factors reset, a key
	// rotated) moves the audit head: it is checkpointed as the server's
	// are, or deleting it from the chain's end would go unnoticed.
	closeAll := func() error {
		if err := platform.WriteAuditCheckpoint(context.WithoutCancel(c.Context), b.Store, cfg.DataDir); err != nil {
			fmt.Fprintf(cmp.Or[io.Writer](c.App.ErrWriter, os.Stderr), "warning: %v\n", err)
		}
		return closeBackends()
	}
	return &hostPlatform{cfg: cfg, dd: dd, b: b, log: log, close: closeAll}, nil
}

// backends opens the database cfg names: a postgres:// URL is PostgreSQL
// (the store, the queue and the record store in that database, shared
// with the other replicas); anything else is the SQLite file. The backends
// are chosen here, and only here. close closes them.
func openBackends(ctx context.Context, cfg platform.Config, dd *platform.DataDir, log *slog.Logger) (b platform.Backends, close func() error, err error) {
	if cfg.DatabaseIsPostgres() {
		if u, err := url.Parse(cfg.Database); err == nil {
			if _, ok := u.User.Password(); ok {
				log.Warn("the database URL holds a password: any user of this host can read a command line; use PGPASSFILE, PGPASSWORD or the 0600 environment file")
			}
		}
		st, err := postgres.Open(ctx, cfg.Database, postgres.Options{IntegrityKey: dd.IntegrityKey, PreviousIntegrityKeys: dd.PreviousIntegrityKeys, Queue: cfg.QueueConfig(), MaxConns: cfg.DatabaseMaxConns})
		if err != nil {
			return b, nil, err
		}
		return platform.Backends{Store: st, Queue: st.Queue(), Records: st.Records(), Access: st, Leader: st.Leader(log)}, st.Close, nil
	}
	if strings.Contains(cfg.Database, "://") {
		return b, nil, cliutil.Usagef("--database %q: want an SQLite file path or a postgres:// URL", redactURL(cfg.Database))
	}
	st, err := sqlite.Open(ctx, cfg.DatabasePath(), sqlite.Options{
		IntegrityKey: dd.IntegrityKey, PreviousIntegrityKeys: dd.PreviousIntegrityKeys, Queue: cfg.QueueConfig(),
		AdoptIntegrity: !dd.IntegrityAdopted(),
	})
	if err != nil {
		return b, nil, err
	}
	return platform.Backends{Store: st, Queue: st.Queue(), Records: st.Records(), Access: st}, st.Close, nil
}

// redactURL drops a URL's user information, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}
