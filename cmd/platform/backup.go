package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/store/sqlite"
)

var backupCommand = &cli.Command{
	Name:      "backup",
	Usage:     "copy the SQLite database consistently, while the platform runs (on its host)",
	ArgsUsage: "FILE",
	Description: "Writes a consistent, compact copy of the database to FILE (which must not exist), mode 0600.\n" +
		"The copy is useless without the data directory's keys: back up the data directory too (docs/platform.md).",
	Flags: []cli.Flag{dataDirFlag(),
		&cli.StringFlag{Name: "database", EnvVars: []string{envDatabase}, Usage: "SQLite database file (default <data-dir>/platform.db)"}},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usageError(c, "want one argument: the backup file")
		}
		cfg := platform.DefaultConfig()
		cfg.DataDir, cfg.Database = c.String("data-dir"), c.String("database")
		if err := sqlite.Backup(c.Context, cfg.DatabasePath(), c.Args().First()); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Database %s copied to %s.\n", cfg.DatabasePath(), c.Args().First())
		return nil
	},
}
