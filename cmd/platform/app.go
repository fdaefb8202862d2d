package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/logging"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/adminctl"
)

func newApp() *cli.App {
	return &cli.App{
		Name:     "platform",
		Usage:    "the Collector control plane: server and admin CLI",
		Version:  buildinfo.String(),
		Flags:    logging.Flags,
		Commands: []*cli.Command{serveCommand, collectorsCommand, integrationsCommand, jobsCommand, entitiesCommand, relationshipsCommand, auditCommand, usersCommand, ssoCommand, tokensCommand, throttlesCommand, loginCommand, backupCommand, keysCommand},
		// Errors are reported once, by main, with their exit code.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return cliutil.Exit(cliutil.ExitUsage, err)
		},
	}
}

func usageError(c *cli.Context, format string, args ...any) error {
	return cliutil.Usagef("%s: %s", c.Command.FullName(), fmt.Sprintf(format, args...))
}

// classify maps library errors to exit codes.
func classify(err error) int {
	var ce *platform.ConfigError
	switch {
	case errors.As(err, &ce):
		return cliutil.ExitUsage
	case errors.Is(err, adminctl.ErrNoToken):
		return cliutil.ExitAuth
	case errors.Is(err, syscall.ECONNREFUSED), isNetError(err):
		return cliutil.ExitUnavailable
	}
	switch api.StatusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return cliutil.ExitAuth
	case http.StatusNotFound:
		return cliutil.ExitNotFound
	case http.StatusConflict:
		return cliutil.ExitConflict
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return cliutil.ExitUsage
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return cliutil.ExitUnavailable
	}
	return 0
}

// isNetError: the platform could not be reached (DNS, timeout, reset).
func isNetError(err error) bool {
	var ne net.Error
	var dns *net.DNSError
	return errors.As(err, &dns) || (errors.As(err, &ne) && ne.Timeout())
}
