package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/termsafe"
)

// UpgradeEngine is what an upgrade needs of the engine beyond the watch.
type UpgradeEngine interface {
	Engine
	CreateContainer(ctx context.Context, spec *engine.ContainerSpec) (string, error)
	RemoveContainer(ctx context.Context, id string, force bool) error
	SignalContainer(ctx context.Context, id, signal string) error
	RenameContainer(ctx context.Context, id, name string) error
	WaitContainer(ctx context.Context, id string) (int, error)
}

// Images verifies an image against the collector's own trust root and
// pulls it by digest (collector.TrustImages).
type Images interface {
	VerifyAndPull(ctx context.Context, ref string) (string, error)
}

// Upgrades lets the daemon upgrade the collector to the image the
// platform asks for (docs/upgrades.md).
type Upgrades struct {
	Engine UpgradeEngine
	Images Images
	// Window is how long a new runner, or a new daemon, has to become
	// healthy before the upgrade is rolled back (default 120 s).
	Window time.Duration
	// Drain is how long the runner's jobs may take to finish before the
	// runner is stopped and its jobs handed over by lease expiry (default
	// 10 min).
	Drain time.Duration
	// Poll is how often health is looked at while waiting (default 2 s).
	Poll time.Duration
	// SuccessorImage is set (from SuccessorEnv) in a daemon an upgrade
	// started: the image it was started on. While the container under
	// SuccessorName runs that image, this daemon is it, and takes the
	// canonical name over once the platform acknowledges its heartbeat.
	// (A container's hostname cannot tell it: the collector's containers
	// may share the host's network, and so its hostname.)
	SuccessorImage string
	// Steps are the steps the old daemon took (from StepsEnv), which a
	// successor's reports go on from.
	Steps []string

	mu       sync.Mutex
	status   *api.UpgradeStatus
	busy     bool
	tookOver bool // a successor's take-over is done
	// CrashAt, in tests, ends the upgrade at a step as a crash would
	// (nothing more done, nothing cleaned up).
	CrashAt func(step string) bool
	failed  map[string]bool // images refused or rolled back since start
	wg      sync.WaitGroup
}

// Defaults of Upgrades.
const (
	DefaultUpgradeWindow = 120 * time.Second
	DefaultDrain         = 10 * time.Minute
	// SuccessorEnv marks the new daemon of an upgrade with its image;
	// StepsEnv lists the steps taken before it (comma-separated).
	SuccessorEnv = env.UpgradeSuccessor
	StepsEnv     = env.UpgradeSteps
	// DrainedDetail is what a drained runner's health check says.
	DrainedDetail = "drained: no job runs"
)

func (u *Upgrades) window() time.Duration { return orDefault(u.Window, DefaultUpgradeWindow) }
func (u *Upgrades) drain() time.Duration  { return orDefault(u.Drain, DefaultDrain) }
func (u *Upgrades) poll() time.Duration   { return orDefault(u.Poll, 2*time.Second) }

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Status is where the last upgrade stands (nil when there was none).
func (u *Upgrades) Status() *api.UpgradeStatus {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.status == nil {
		return nil
	}
	s := *u.status
	s.Steps = slices.Clone(s.Steps)
	return &s
}

func (u *Upgrades) crash(step string) bool { return u.CrashAt != nil && u.CrashAt(step) }

// pendingTakeOver says whether this daemon is a successor that has not
// taken the canonical name over yet.
func (u *Upgrades) pendingTakeOver() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.SuccessorImage != "" && !u.tookOver
}

// Busy says whether an upgrade is under way: the daemon then leaves the
// runner alone (the upgrade stops and replaces it).
func (u *Upgrades) Busy() bool {
	if u == nil {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.busy
}

// set records a new step of the upgrade to image (a new image starts a
// new list of steps).
func (u *Upgrades) set(state, image, reason string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var steps []string
	if u.status != nil && u.status.Image == image {
		steps = u.status.Steps
	}
	steps = append(steps, state)
	if len(steps) > api.MaxUpgradeSteps {
		steps = steps[len(steps)-api.MaxUpgradeSteps:]
	}
	u.status = &api.UpgradeStatus{State: state, Image: image, Reason: reason, Steps: slices.Clone(steps)}
}

// currentImage is the image the collector's containers run: a
// successor's own, else the daemon container's (after an upgrade the
// config still names the image it was installed with), else the config's.
func (d *Daemon) currentImage(ctx context.Context) string {
	if u := d.Upgrades; u != nil && u.SuccessorImage != "" {
		return u.SuccessorImage
	}
	ctx, cancel := context.WithTimeout(ctx, engineCallTimeout)
	defer cancel()
	if c, err := d.eng.InspectContainer(ctx, d.cfg.DaemonName()); err == nil && c.Image != "" {
		return c.Image
	}
	return d.cfg.Image
}

// SuccessorName is the name of an upgrade's new daemon until it takes the
// canonical name over.
func SuccessorName(c *config.Config) string { return c.DaemonName() + "-next" }

// maybeUpgrade starts an upgrade to image if the platform asks for one
// this daemon does not run, has not failed, and none is under way.
func (d *Daemon) maybeUpgrade(ctx context.Context, image string) {
	u := d.Upgrades
	if u == nil || image == "" || image == d.image {
		return
	}
	u.mu.Lock()
	if u.failed == nil {
		u.failed = map[string]bool{}
	}
	if u.busy || u.failed[image] {
		u.mu.Unlock()
		return
	}
	u.busy = true
	u.mu.Unlock()
	u.wg.Go(func() {
		defer func() {
			u.mu.Lock()
			u.busy = false
			u.mu.Unlock()
		}()
		d.upgrade(ctx, image)
	})
}

// upgrade runs one upgrade from d.image to image: verify and pull, drain
// the runner, replace it and wait for it to be healthy, then start the new
// daemon under SuccessorName, which takes over. Any step that fails rolls
// back to the image the collector ran, which is still on the host.
func (d *Daemon) upgrade(ctx context.Context, image string) {
	u, from := d.Upgrades, d.image
	log := d.log.With("upgrade_to", image, "from", from)
	fail := func(state, reason string) {
		log.Error("upgrade failed", "state", state, "reason", reason)
		u.mu.Lock()
		u.failed[image] = true
		u.mu.Unlock()
		u.set(state, image, reason)
	}
	if d.successorRunning(ctx, image) {
		// This daemon died after starting its successor and was restarted:
		// the successor is taking over. Wait for it as before the crash.
		log.Info("upgrade: the new daemon is running already; waiting for it to take over")
		d.awaitTakeOver(ctx, from, image, fail)
		return
	}
	log.Info("upgrade: verifying and pulling the new image")
	u.set(api.UpgradePulling, image, "")
	pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	_, err := u.Images.VerifyAndPull(pctx, image)
	cancel()
	if err != nil {
		fail(api.UpgradeRefused, "verify and pull: "+termsafe.String(err.Error()))
		return
	}
	if u.crash("pulled") {
		return
	}

	log.Info("upgrade: draining the runner")
	u.set(api.UpgradeDraining, image, "")
	d.drainRunner(ctx)
	if u.crash("drained") {
		return
	}

	if err := d.replaceRunner(ctx, image); err != nil {
		d.rollBack(ctx, from, image, "runner: "+err.Error(), fail)
		return
	}
	u.set(api.UpgradeRunner, image, "")
	if err := d.waitHealthy(ctx, d.cfg.RunnerName()); err != nil {
		d.rollBack(ctx, from, image, "runner "+err.Error(), fail)
		return
	}

	if u.crash("runner") {
		return
	}
	log.Info("upgrade: the new runner is healthy; starting the new daemon")
	next := d.withImage(image)
	spec := install.DaemonSpec(next)
	spec.Name = SuccessorName(d.cfg)
	spec.Env[SuccessorEnv] = image
	if s := u.Status(); s != nil {
		spec.Env[StepsEnv] = strings.Join(s.Steps, ",")
	}
	if err := d.recreate(ctx, spec); err != nil {
		d.rollBack(ctx, from, image, "daemon: "+err.Error(), fail)
		return
	}
	if u.crash("successor") {
		return
	}
	d.awaitTakeOver(ctx, from, image, fail)
}

// awaitTakeOver waits for the successor to take over: it removes this
// daemon once the platform acknowledges it, and this process ends then.
// Still here after the window, the successor failed: it is removed and
// the runner rolled back.
func (d *Daemon) awaitTakeOver(ctx context.Context, from, image string, fail func(state, reason string)) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(d.Upgrades.window()):
	}
	d.removeQuietly(ctx, SuccessorName(d.cfg))
	d.rollBack(ctx, from, image, fmt.Sprintf("daemon: the new daemon did not take over within %v", d.Upgrades.window()), fail)
}

// successorRunning says whether a successor daemon on image runs.
func (d *Daemon) successorRunning(ctx context.Context, image string) bool {
	ctx, cancel := context.WithTimeout(ctx, engineCallTimeout)
	defer cancel()
	c, err := d.Upgrades.Engine.InspectContainer(ctx, SuccessorName(d.cfg))
	return err == nil && c.Running && c.Image == image
}

// withImage is the config with another image.
func (d *Daemon) withImage(image string) *config.Config {
	c := *d.cfg
	c.Image = image
	return &c
}

// drainRunner asks the runner to lease no more jobs and waits for it to
// end with its jobs; past the drain timeout it stops it (its jobs are
// stopped, and their leases expire: the new runner runs them again).
func (d *Daemon) drainRunner(ctx context.Context) {
	u, name := d.Upgrades, d.cfg.RunnerName()
	sctx, cancel := context.WithTimeout(ctx, engineCallTimeout)
	err := u.Engine.SignalContainer(sctx, name, "USR1")
	cancel()
	if err != nil {
		d.log.Warn("upgrade: asking the runner to drain failed; stopping it", "err", err)
	} else if d.waitDrained(ctx, name) {
		d.log.Info("upgrade: the runner drained")
		return
	} else {
		d.log.Warn("upgrade: the runner did not drain in time; stopping it (its jobs are handed over by lease expiry)", "drain", u.drain())
	}
	sctx, cancel = context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := u.Engine.StopContainer(sctx, name, 30*time.Second); err != nil && !errors.Is(err, engine.ErrNotFound) {
		d.log.Warn("upgrade: stopping the runner failed", "err", err)
	}
}

// waitDrained waits, up to the drain timeout, for the runner's health
// check to say it drained (its jobs ended; it leases nothing and waits).
func (d *Daemon) waitDrained(ctx context.Context, name string) bool {
	u := d.Upgrades
	deadline := time.Now().Add(u.drain())
	for time.Now().Before(deadline) {
		hctx, cancel := context.WithTimeout(ctx, engineCallTimeout+time.Minute)
		h, err := u.Engine.RunHealthCheck(hctx, name)
		cancel()
		if err == nil && strings.Contains(h.Output, DrainedDetail) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(u.poll()):
		}
	}
	return false
}

// replaceRunner removes the runner and creates it from image.
func (d *Daemon) replaceRunner(ctx context.Context, image string) error {
	return d.recreate(ctx, install.RunnerSpec(d.withImage(image)))
}

// recreate removes the container named as spec is, and creates and
// starts spec.
func (d *Daemon) recreate(ctx context.Context, spec *engine.ContainerSpec) error {
	ctx, cancel := context.WithTimeout(ctx, ensureTimeout)
	defer cancel()
	e := d.Upgrades.Engine
	if err := e.RemoveContainer(ctx, spec.Name, true); err != nil && !errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("remove %s: %w", spec.Name, err)
	}
	id, err := e.CreateContainer(ctx, spec)
	if err != nil {
		return fmt.Errorf("create %s: %w", spec.Name, err)
	}
	if err := e.StartContainer(ctx, id); err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	return nil
}

func (d *Daemon) removeQuietly(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.Upgrades.Engine.RemoveContainer(ctx, name, true); err != nil && !errors.Is(err, engine.ErrNotFound) {
		d.log.Warn("removing a container failed", "name", name, "err", err)
	}
}

// waitHealthy waits for the named container's health check to pass,
// within the window.
func (d *Daemon) waitHealthy(ctx context.Context, name string) error {
	u := d.Upgrades
	deadline := time.Now().Add(u.window())
	last := "no answer"
	for {
		hctx, cancel := context.WithTimeout(ctx, engineCallTimeout+time.Minute)
		h, err := u.Engine.RunHealthCheck(hctx, name)
		cancel()
		switch {
		case err == nil && h.Status == engine.HealthHealthy:
			return nil
		case err == nil:
			last = h.Status
			if h.Output != "" {
				last += ": " + termsafe.String(h.Output)
			}
		default:
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy within %v (%s)", u.window(), last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(u.poll()):
		}
	}
}

// rollBack puts the runner back on the image the collector ran and
// reports why.
func (d *Daemon) rollBack(ctx context.Context, from, image, reason string, fail func(state, reason string)) {
	d.log.Warn("upgrade: rolling back", "to", from, "reason", reason)
	if err := d.replaceRunner(ctx, from); err != nil {
		reason += "; putting the runner back failed too: " + err.Error()
	}
	fail(api.UpgradeRolledBack, reason)
}

// takeOver is the successor's part: once the platform has acknowledged
// its heartbeat, remove the daemon it replaces and take its name. Each
// step can be run again after a crash: a successor restarted by its
// restart policy runs it again.
func (d *Daemon) takeOver(ctx context.Context) error {
	u := d.Upgrades
	ctx, cancel := context.WithTimeout(ctx, ensureTimeout)
	defer cancel()
	canonical := d.cfg.DaemonName()
	next, err := u.Engine.InspectContainer(ctx, SuccessorName(d.cfg))
	switch {
	case errors.Is(err, engine.ErrNotFound) || (err == nil && next.Image != u.SuccessorImage):
		// No successor on this image: this daemon took the name over
		// already (this is a restart of it).
		u.set(api.UpgradeSucceeded, d.image, "")
		u.mu.Lock()
		u.tookOver = true
		u.mu.Unlock()
		return nil
	case err != nil:
		return err
	}
	if err := u.Engine.RemoveContainer(ctx, canonical, true); err != nil && !errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("remove the old daemon: %w", err)
	}
	if err := u.Engine.RenameContainer(ctx, SuccessorName(d.cfg), canonical); err != nil {
		return fmt.Errorf("take the name %s: %w", canonical, err)
	}
	d.log.Info("upgrade: the new daemon took over", "image", d.image)
	u.set(api.UpgradeSucceeded, d.image, "")
	u.mu.Lock()
	u.tookOver = true
	u.mu.Unlock()
	return nil
}

// tidySuccessor, in a canonical daemon at start, clears what an upgrade
// that did not finish (this daemon died in it) left: a successor is
// removed unless it runs (then it is taking over, and this daemon is
// about to go); a runner left drained is restarted, so that it leases
// again whether or not the upgrade is tried again.
func (d *Daemon) tidySuccessor(ctx context.Context) {
	ictx, cancel := context.WithTimeout(ctx, engineCallTimeout)
	c, err := d.Upgrades.Engine.InspectContainer(ictx, SuccessorName(d.cfg))
	cancel()
	switch {
	case err == nil && c.Running:
		return
	case err == nil:
		d.log.Warn("removing the new daemon of an upgrade that did not finish", "image", c.Image)
		d.removeQuietly(ctx, c.Name)
	}
	hctx, cancel := context.WithTimeout(ctx, engineCallTimeout+time.Minute)
	h, err := d.Upgrades.Engine.RunHealthCheck(hctx, d.cfg.RunnerName())
	cancel()
	if err == nil && strings.Contains(h.Output, DrainedDetail) {
		d.log.Warn("the runner was left drained by an upgrade that did not finish: restarting it")
		if err := d.restartRunner(ctx); err != nil {
			d.log.Error("restarting the drained runner failed", "err", err)
		}
	}
}
