package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/auto"
	"github.com/collectorhq/collector/internal/env"
)

// engineFlags select the container engine; every command that needs one
// takes them.
var engineFlags = []cli.Flag{
	&cli.StringFlag{Name: "engine", EnvVars: []string{env.EngineKind}, Usage: "podman or docker (default: detect)"},
	&cli.StringFlag{Name: "engine-host", EnvVars: []string{env.EngineHost}, Usage: "engine socket, unix:///path (default: CONTAINER_HOST, DOCKER_HOST, then the usual sockets)"},
	&cli.StringFlag{Name: "secret-dir", Value: engine.DefaultSecretDir, EnvVars: []string{env.SecretDir}, Usage: "directory on a tmpfs for job secret files, mounted from the host (anything else is refused: secrets never reach a disk)"},
}

func engineConfig(c *cli.Context) engine.Config {
	return engine.Config{
		Kind:      engine.Kind(c.String("engine")),
		Host:      c.String("engine-host"),
		SecretDir: c.String("secret-dir"),
	}
}

var engineCommand = &cli.Command{
	Name:  "engine",
	Usage: "inspect the container engine the collector uses",
	Subcommands: []*cli.Command{{
		Name:  "info",
		Usage: "say which engine answers, its version, cgroup version and SELinux state",
		Flags: append([]cli.Flag{&cli.BoolFlag{Name: "json", Usage: "machine-readable output"}}, engineFlags...),
		Action: func(c *cli.Context) error {
			eng, err := auto.Open(c.Context, engineConfig(c))
			if err != nil {
				return err
			}
			defer eng.Close()
			info, err := eng.Info(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			fmt.Fprintf(c.App.Writer, "engine:   %s %s (API %s)\nhost:     %s/%s, %d CPUs, %d MiB\ncgroups:  v%s\nrootless: %v\nSELinux:  %v\n",
				info.Kind, info.Version, info.APIVersion, info.OS, info.Arch, info.CPUs, info.MemoryBytes>>20,
				info.CgroupVersion, info.Rootless, info.SELinuxEnabled)
			return nil
		},
	}},
}
