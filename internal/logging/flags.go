package logging

import (
	"log/slog"
	"os"

	"github.com/collectorhq/collector/internal/env"

	"github.com/urfave/cli/v2"
)

// Flags are the logging flags both binaries share.
var Flags = []cli.Flag{
	&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{env.LogLevel}, Usage: "debug, info, warn or error"},
	&cli.StringFlag{Name: "log-format", Value: "auto", EnvVars: []string{env.LogFormat}, Usage: "auto (text on a terminal, else JSON), json or text"},
}

// FromContext builds the logger the flags describe, writing to stderr.
func FromContext(c *cli.Context) (*slog.Logger, error) {
	level, err := ParseLevel(c.String("log-level"))
	if err != nil {
		return nil, err
	}
	return New(os.Stderr, Format(c.String("log-format")), level)
}
