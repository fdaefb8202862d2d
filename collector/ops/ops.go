// Package ops is the operator's side of the collector on its host: the
// library behind `collector status`, `logs`, `doctor`, `support-bundle`
// and `uninstall`. Each reads the same config dir and engine as the
// roles, and treats every string from the platform, the engine or a
// container as data: what reaches a terminal is escaped (termsafe), what
// leaves the host in a bundle is redacted (Redactor).
package ops

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/engine"
)

// InstallLogFile is where the installer keeps its output, under the
// state dir (the installer's container is removed when it ends).
const InstallLogFile = "install.log"

// Env is what every operator command reads.
type Env struct {
	// Dir is the config dir (/etc/collector); StateDir the state dir,
	// used when the config cannot be read.
	Dir, StateDir string
	// HostRoot is where the command sees the host's / for the host's
	// systemd and Quadlet units: "/" on the host, where it is mounted in
	// a container, or a test's dir. The engine socket, the secret dir and
	// the config and state dirs are used at their own paths (mounted at
	// the same paths in a container, as the daemon and runner have them).
	HostRoot string
	// Engine is the container engine, nil when it could not be opened
	// (EngineErr says why); EngineSocket the socket that was tried.
	Engine       engine.Engine
	EngineErr    error
	EngineSocket string
	// Now is the clock.
	Now func() time.Time
	// HTTPTimeout bounds each probe of the platform or a registry.
	HTTPTimeout time.Duration
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Env) httpTimeout() time.Duration {
	if e.HTTPTimeout > 0 {
		return e.HTTPTimeout
	}
	return 10 * time.Second
}

// loadConfig reads the config; nil and the error when there is none.
func (e *Env) loadConfig() (*config.Config, error) {
	if !config.Exists(e.Dir) {
		return nil, fmt.Errorf("%w: no collector config in %s (install it: see docs/operations.md)", ErrNotInstalled, e.Dir)
	}
	c, _, err := config.Load(e.Dir)
	return c, err
}

// ErrNotInstalled: there is no collector on this host (at the config dir).
var ErrNotInstalled = errors.New("not installed")

// ErrEngine: the engine did not answer.
var ErrEngine = errors.New("engine unreachable")

// pinnedClient is an HTTP client to the platform that trusts only the
// pinned CA, through the config's proxy if any, with no retries: a probe
// says what it found at once.
func (e *Env) pinnedClient(cfg *config.Config) (*http.Client, error) {
	pins, err := e.caPins(cfg)
	if err != nil {
		return nil, err
	}
	c, err := egress.PlatformClientPins(func() []string { return pins }, cfg.PlatformURL, cfg.Egress())
	if err != nil {
		return nil, err
	}
	c.Timeout = e.httpTimeout()
	return c, nil
}

// caPins are the platform CA pins the collector accepts now: the pin of
// enrollment, or those the daemon and runner pinned in the state dir
// since the platform's CA was rotated (docs/auth.md).
func (e *Env) caPins(cfg *config.Config) ([]string, error) {
	pk, err := config.NewPlatformKeys(e.stateDir(), cfg.PlatformSigningKey, cfg.CAPin, e.now)
	if err != nil {
		return nil, err
	}
	return pk.CAPins(), nil
}

// engineCtx bounds one engine call.
func engineCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 15*time.Second)
}

// roleNames are the collector's own containers: the daemon's, then the
// runner's, with the prefix its config names (the defaults without one).
func (e *Env) roleNames() []string {
	c, err := e.loadConfig()
	if err != nil {
		c = &config.Config{}
	}
	return []string{c.DaemonName(), c.RunnerName()}
}

// digestOf returns the sha256:... of a digest reference, or "".
func digestOf(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d
	}
	return ""
}

// stripUserinfo removes credentials from a URL for display.
func stripUserinfo(u string) string { return urlUserinfo.ReplaceAllString(u, "${1}") }
