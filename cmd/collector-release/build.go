package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/release"
)

var buildCommand = &cli.Command{
	Name:      "build",
	Usage:     "build an integration's Go package into a FROM-scratch image, reproducibly, with its manifest in the image's labels",
	ArgsUsage: "PACKAGE (e.g. ./cmd/my-integration)",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "image", Required: true, Usage: "tag to build, REGISTRY/NAME:TAG"},
		&cli.StringFlag{Name: "manifest", Usage: "the integration's manifest (default: integration.yaml in the package's directory, else here)"},
		&cli.StringFlag{Name: "containerfile", Usage: "use this Containerfile instead of the built-in one"},
		&cli.StringFlag{Name: "version", Usage: "org.opencontainers.image.version (default: the manifest's version)"},
		&cli.StringFlag{Name: "commit", Value: "unknown", Usage: "org.opencontainers.image.revision"},
		&cli.StringFlag{Name: "source-url", Usage: "org.opencontainers.image.source"},
		&cli.Int64Flag{Name: "epoch", EnvVars: []string{env.SourceDateEpoch}, Usage: "time of the image and its files, in seconds since 1970 (default 0)"},
		&cli.StringFlag{Name: "tags", Usage: "Go build tags"},
		&cli.StringFlag{Name: "podman", Value: "podman", EnvVars: []string{env.ReleasePodman}, Usage: "podman command line (word-split), e.g. \"podman --root /x\""},
		&cli.BoolFlag{Name: "push", Usage: "push the image to its tag after the build"},
		&cli.StringFlag{Name: "iidfile", Usage: "write the image ID to this file"},
		&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
	}, registryFlags...),
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cliutil.Usagef("build: want one Go package (e.g. ./cmd/my-integration), got %d arguments", c.NArg())
		}
		pkg := c.Args().First()
		res, err := release.Build(c.Context, release.BuildOptions{
			Package: pkg, Image: c.String("image"), Manifest: c.String("manifest"), Containerfile: c.String("containerfile"),
			Podman: strings.Fields(c.String("podman")), Tags: c.String("tags"),
			Version: c.String("version"), Commit: c.String("commit"), SourceURL: c.String("source-url"), Epoch: c.Int64("epoch"),
			Push: c.Bool("push"), TLSVerify: !c.Bool("insecure"), Log: c.App.ErrWriter,
		})
		if err != nil {
			return err
		}
		if p := c.String("iidfile"); p != "" {
			if err := writeFile(p, res.ID+"\n"); err != nil {
				return err
			}
		}
		if c.Bool("json") {
			return json.NewEncoder(c.App.Writer).Encode(map[string]any{"image": res.Image, "id": res.ID, "name": res.Manifest.Name,
				"version": res.Manifest.Version, "pushed": c.Bool("push")})
		}
		fmt.Fprintf(c.App.Writer, "built %s (%s %s) as %s\n", res.Image, res.Manifest.Name, res.Manifest.Version, res.ID)
		return nil
	},
}

func writeFile(path, s string) error {
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
