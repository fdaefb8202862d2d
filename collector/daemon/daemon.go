// Package daemon is the collector's long-running supervisor role: it
// heartbeats to the platform (version, engine, host capacity, container
// storage, running jobs, the runner's state and health, and why the
// engine does not answer when it does not), keeps its access token fresh
// through the client, brings collector-runner back when it is gone or
// stopped, restarts it when its health check says it is stuck, and keeps
// its own health status (package health) for its container's check.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/health"
	"github.com/collectorhq/collector/collector/host"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/termsafe"
)

// Platform is the part of the collector API the daemon uses: a heartbeat,
// answered with the image the platform wants it to run, if any.
type Platform interface {
	Beat(ctx context.Context, hb api.Heartbeat) (*api.HeartbeatAnswer, error)
}

// Engine is the part of a container engine the daemon itself calls
// (engine.Engine has it all).
type Engine interface {
	// Info is the daemon's check that the engine answers.
	Info(ctx context.Context) (*engine.Info, error)
	InspectContainer(ctx context.Context, id string) (*engine.Container, error)
	ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error)
	// RunHealthCheck, StopContainer and StartContainer restart an
	// unhealthy runner.
	RunHealthCheck(ctx context.Context, id string) (*engine.Health, error)
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	StartContainer(ctx context.Context, id string) error
}

var _ Engine = engine.Engine(nil)

// RunnerStarter brings collector-runner back (creating or starting it) and
// says what it did: install.EnsureRunner does, with the whole engine.
type RunnerStarter func(ctx context.Context) (string, error)

// RunnerUnknown is the runner state a heartbeat reports when the engine
// cannot say (api.Heartbeat.EngineError says why).
const RunnerUnknown = "unknown"

// Daemon supervises one collector.
type Daemon struct {
	cfg         *config.Config
	eng         Engine
	startRunner RunnerStarter
	platform    Platform
	log         *slog.Logger
	// Interval overrides the heartbeat interval from enrollment (tests).
	Interval time.Duration
	// WatchRunner turns the runner supervision on: bring back a missing
	// or stopped runner (off when systemd supervises it).
	WatchRunner bool
	// HealthFile is where the daemon keeps its health status ("" none).
	HealthFile string
	// Now is the clock (tests).
	Now func() time.Time
	// Upgrades, when set, lets the daemon upgrade the collector to the
	// image the platform asks for.
	Upgrades *Upgrades
	// Clock, when set, is the platform's clock as the client measures
	// it: its offset goes in each heartbeat.
	Clock interface{ Offset() (time.Duration, bool) }
	// PinPlatformKeys, when set, pins the platform key set a heartbeat
	// answer carries during a rotation of the platform's signing key or
	// CA (config.PlatformKeys.Apply, docs/auth.md §8): the daemon pins it
	// whether or not the collector takes jobs.
	PinPlatformKeys func(*crypto.SignedKeySet) (bool, error)

	image string // the image the collector's containers run

	engineDown     bool          // what the last heartbeat found, to log changes only
	startedAt      time.Time     // when Run began
	lastAck        time.Time     // when the platform last acknowledged a heartbeat
	runnerRestart  time.Time     // when the daemon last restarted an unhealthy runner
	runnerRestarts int           // how many times, since the daemon started
	clockFar       bool          // the host's clock was ClockWarnAt or more off the platform's
	clockOff       time.Duration // the offset last logged
	engineInfo     *engine.Info  // what the engine last said of itself (nil: ask)
	engineInfoAt   time.Time     // when
}

// runnerRestartGrace is how long a restarted runner has to become healthy
// before it can be restarted again: its health check's start period and
// three failed checks.
const runnerRestartGrace = 3 * time.Minute

// New returns a daemon on eng, which brings the runner back with
// install.EnsureRunner: the one step that needs the whole engine.
func New(cfg *config.Config, eng engine.Engine, p Platform, log *slog.Logger) *Daemon {
	var d *Daemon
	// The runner is brought back on the image the collector runs now,
	// which an upgrade may have changed since the config was written.
	start := func(ctx context.Context) (string, error) { return install.EnsureRunner(ctx, eng, d.withImage(d.image)) }
	d = NewWith(cfg, eng, start, p, log)
	d.HealthFile = health.File
	// Under systemd, the runner's unit brings it back, not the daemon.
	d.WatchRunner = !cfg.SystemdManaged()
	return d
}

// NewWith returns a daemon that watches through eng and brings the runner
// back with start.
func NewWith(cfg *config.Config, eng Engine, start RunnerStarter, p Platform, log *slog.Logger) *Daemon {
	d := &Daemon{cfg: cfg, eng: eng, startRunner: start, platform: p, log: log, WatchRunner: true, Now: time.Now}
	d.Interval = time.Duration(cfg.HeartbeatIntervalSec) * time.Second
	if d.Interval <= 0 {
		d.Interval = 30 * time.Second
	}
	return d
}

// Run heartbeats and watches the runner until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	t := time.NewTicker(d.Interval)
	defer t.Stop()
	d.startedAt = d.Now()
	d.image = d.currentImage(ctx)
	if u := d.Upgrades; u != nil {
		defer u.wg.Wait()
		if u.SuccessorImage == "" {
			d.tidySuccessor(ctx)
		} else {
			// The new daemon of an upgrade: its first heartbeats say so,
			// after the steps the old one took.
			u.status = &api.UpgradeStatus{Image: u.SuccessorImage, Steps: u.Steps}
			u.set(api.UpgradeDaemon, u.SuccessorImage, "")
		}
	}
	for {
		hb := d.heartbeat(ctx)
		ans, err := d.platform.Beat(ctx, hb)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("heartbeat failed", "err", err)
		} else if err == nil {
			d.lastAck = d.Now()
			d.log.Debug("heartbeat sent", "runner", hb.RunnerState, "running_jobs", hb.RunningJobs, "engine_error", hb.EngineError)
			d.afterAck(ctx, ans)
		}
		if ctx.Err() == nil {
			d.writeHealth(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// afterAck acts on an acknowledged heartbeat: a successor takes over, and
// an image the platform asks for is upgraded to.
func (d *Daemon) afterAck(ctx context.Context, ans *api.HeartbeatAnswer) {
	if ans != nil && ans.PlatformKeys != nil && d.PinPlatformKeys != nil {
		d.pinPlatformKeys(ans.PlatformKeys)
	}
	u := d.Upgrades
	if u == nil {
		return
	}
	if u.pendingTakeOver() {
		if err := d.takeOver(ctx); err != nil {
			d.log.Error("upgrade: taking over from the old daemon failed; trying again at the next heartbeat", "err", err)
		}
		return
	}
	if ans != nil {
		d.maybeUpgrade(ctx, ans.DesiredImage)
	}
}

// pinPlatformKeys pins the key set of a heartbeat answer; one signed by
// no key the collector accepts changes nothing.
func (d *Daemon) pinPlatformKeys(s *crypto.SignedKeySet) {
	changed, err := d.PinPlatformKeys(s)
	switch {
	case errors.Is(err, crypto.ErrKeySetRefused):
		d.log.Error("the platform's key set is signed by no key this collector accepts: refused; "+
			"if the platform's signing key was rotated while this collector was away past the grace, enroll it again", "err", err)
	case err != nil:
		d.log.Error("pinning the platform's keys failed", "err", err)
	case changed:
		d.log.Info("pinned the platform's keys and CA pins from a heartbeat answer")
	}
}

// Bounds of the engine calls of one heartbeat: an engine socket that stops
// answering must not stop the heartbeats that say so.
const (
	engineCallTimeout = 10 * time.Second
	ensureTimeout     = 2 * time.Minute
)

// ClockWarnAt is the offset from the platform's clock past which the
// daemon warns (the collector works in platform time whatever it is).
const ClockWarnAt = 5 * time.Second

// noteClock logs the host's offset from the platform's clock when it
// crosses ClockWarnAt, either way.
func (d *Daemon) noteClock(off time.Duration) {
	off = off.Round(time.Second)
	far := off.Abs() >= ClockWarnAt
	if far == d.clockFar && (!far || off == d.clockOff) {
		return
	}
	d.clockFar, d.clockOff = far, off
	if far {
		d.log.Warn("this host's clock is off the platform's: the collector uses the platform's time (assertions, envelope expiry); fix the host's time sync (chronyd)",
			"platform_minus_host", off.String())
	} else {
		d.log.Info("this host's clock agrees with the platform's again")
	}
}

// heartbeat gathers what the daemon reports. While the engine does not
// answer, the heartbeat says why in EngineError and the runner's state is
// unknown, so the platform shows the collector degraded, not active.
func (d *Daemon) heartbeat(ctx context.Context) api.Heartbeat {
	c := host.Read().Offered(d.cfg.JobCPUs, d.cfg.JobMemoryBytes)
	hb := api.Heartbeat{Version: buildinfo.Version,
		Capacity: api.Capacity{CPUs: c.CPUs, MemoryTotalBytes: c.MemoryTotalBytes, MemoryFreeBytes: c.MemoryFreeBytes},
		Upgrade:  d.Upgrades.Status()}
	if api.ValidDigestRef(d.image) {
		hb.Image = d.image
	}
	if d.Clock != nil {
		if off, ok := d.Clock.Offset(); ok {
			hb.ClockOffsetMs = off.Milliseconds()
			d.noteClock(off)
		}
	}
	info, err := d.info(ctx)
	if err == nil {
		hb.Engine = api.Engine{Kind: string(info.Kind), Version: info.Version}
		hb.Storage = storageUse(info.Storage)
		hb.RunnerState, hb.RunnerHealth, err = d.checkRunner(ctx)
	}
	if err == nil {
		hb.RunningJobs = d.runningJobs(ctx)
	} else {
		d.engineInfo = nil // asked again next time: the engine may come back another
		hb.RunnerState, hb.EngineError = RunnerUnknown, engineError(err)
	}
	d.noteEngine(ctx, err)
	return hb
}

// infoMaxAge is how long the daemon reports what the engine last said of
// itself (its version, its storage's use) before asking again. Podman's
// info asks the host's package manager for the version of each of its
// components: about a second of CPU on every call (`podman info` here:
// eleven dpkg-query runs), which a heartbeat every 30 s should not pay.
// Every heartbeat still inspects the runner, so an engine that stops
// answering is seen at once (and asked for its info when it is back).
const infoMaxAge = 5 * time.Minute

// info is what the engine says of itself, asked within engineCallTimeout
// when what it said last is infoMaxAge old.
func (d *Daemon) info(ctx context.Context) (*engine.Info, error) {
	if d.engineInfo != nil && d.Now().Sub(d.engineInfoAt) < infoMaxAge {
		return d.engineInfo, nil
	}
	ctx, cancel := context.WithTimeout(ctx, engineCallTimeout)
	defer cancel()
	info, err := d.eng.Info(ctx)
	if err != nil {
		return nil, err
	}
	d.engineInfo, d.engineInfoAt = info, d.Now()
	return info, nil
}

// noteEngine logs when the engine stops or starts answering.
func (d *Daemon) noteEngine(ctx context.Context, err error) {
	switch {
	case ctx.Err() != nil:
		return
	case err != nil && !d.engineDown:
		d.log.Warn("container engine unreachable: the collector cannot run jobs until it answers", "err", err)
	case err == nil && d.engineDown:
		d.log.Info("container engine reachable again")
	}
	d.engineDown = err != nil
}

// checkRunner returns the runner's state and health, restarting it if it
// is gone or stopped, or unhealthy; an error means the engine could not
// say.
func (d *Daemon) checkRunner(ctx context.Context) (string, string, error) {
	ictx, cancel := context.WithTimeout(ctx, engineCallTimeout)
	c, err := d.eng.InspectContainer(ictx, d.cfg.RunnerName())
	cancel()
	switch {
	case err == nil && c.Running:
		state, h := d.runnerHealth(ctx)
		return state, h, nil
	case err != nil && !errors.Is(err, engine.ErrNotFound):
		return RunnerUnknown, "", fmt.Errorf("inspect %s: %w", d.cfg.RunnerName(), err)
	}
	was := "missing"
	if err == nil {
		was = c.State
	}
	if !d.WatchRunner || d.Upgrades.Busy() {
		// An upgrade under way drains and replaces the runner itself.
		return was, "", nil
	}
	return d.bringBack(ctx, was), "", nil
}

// bringBack recreates or starts the runner, returning the state to report.
func (d *Daemon) bringBack(ctx context.Context, was string) string {
	ctx, cancel := context.WithTimeout(ctx, ensureTimeout)
	defer cancel()
	what, err := d.startRunner(ctx)
	if err != nil {
		d.log.Error("bringing the runner back failed", "was", was, "err", err)
		return was
	}
	d.log.Warn("runner was not running: brought it back", "was", was, "action", what)
	return api.RunnerRestarted
}

// runningJobs counts this collector's running job containers.
func (d *Daemon) runningJobs(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, engineCallTimeout)
	defer cancel()
	jobs, err := d.eng.ListContainers(ctx, map[string]string{"io.collector.role": "job", "io.collector.collector": d.cfg.CollectorID})
	if err != nil {
		return 0
	}
	n := 0
	for _, j := range jobs {
		if j.Running {
			n++
		}
	}
	return n
}

// maxEngineError is what a heartbeat may carry of the engine's error.
const maxEngineError = 512

// urlUserinfo matches the credentials of a URL ("ssh://user:pass@host"),
// which an engine address may hold.
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@`)

// engineError is err as a heartbeat reports it: no URL credentials, one
// printable line (control and format characters escaped), at most
// maxEngineError bytes.
func engineError(err error) string {
	s := termsafe.String(urlUserinfo.ReplaceAllString(err.Error(), "${1}"))
	if len(s) <= maxEngineError {
		return s
	}
	const more = "..."
	cut := maxEngineError - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}
