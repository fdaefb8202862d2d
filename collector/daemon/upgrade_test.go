package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/testutil"
)

const (
	imgOld = "127.0.0.1:5000/collector@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	imgNew = "127.0.0.1:5000/collector@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// upEngine is an engine in memory for the upgrade: containers by name,
// each with an ID, image, env and state; health answers by the image
// (unhealthy images never pass); a runner signalled USR1 says it drained.
type upEngine struct {
	mu         sync.Mutex
	byName     map[string]*upContainer
	next       int
	unhealthy  map[string]bool // images whose containers never turn healthy
	events     []string
	noDrain    bool // the runner ignores USR1 (its jobs never end)
	signalled  map[string]bool
	healthRuns int
	// successorLooks counts the inspections of collector-daemon-next.
	successorLooks int
}

type upContainer struct {
	id, image string
	env       map[string]string
	running   bool
}

func newUpEngine() *upEngine {
	e := &upEngine{byName: map[string]*upContainer{}, unhealthy: map[string]bool{}, signalled: map[string]bool{}}
	e.byName["collector-daemon"] = &upContainer{id: "daemon0000001", image: imgOld, running: true}
	e.byName["collector-runner"] = &upContainer{id: "runner0000001", image: imgOld, running: true}
	return e
}

func (e *upEngine) log(f string, a ...any) { e.events = append(e.events, fmt.Sprintf(f, a...)) }

func (e *upEngine) has(ev string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.events {
		if x == ev {
			return true
		}
	}
	return false
}

func (e *upEngine) image(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.byName[name]; c != nil {
		return c.image
	}
	return ""
}

func (e *upEngine) Info(context.Context) (*engine.Info, error) {
	return &engine.Info{Kind: engine.KindPodman, Version: "4.3.1"}, nil
}

func (e *upEngine) InspectContainer(_ context.Context, name string) (*engine.Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if name == "collector-daemon-next" {
		e.successorLooks++
	}
	c := e.byName[name]
	if c == nil {
		return nil, fmt.Errorf("%s: %w", name, engine.ErrNotFound)
	}
	return &engine.Container{ID: c.id, Name: name, Image: c.image, Running: c.running, State: map[bool]string{true: "running", false: "exited"}[c.running]}, nil
}

func (e *upEngine) ListContainers(context.Context, map[string]string) ([]engine.Container, error) {
	return nil, nil
}

func (e *upEngine) RunHealthCheck(_ context.Context, name string) (*engine.Health, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.healthRuns++
	c := e.byName[name]
	switch {
	case c == nil:
		return nil, engine.ErrNotFound
	case e.signalled[c.id] && !e.noDrain:
		return &engine.Health{Status: engine.HealthHealthy, Output: "runner healthy: " + DrainedDetail}, nil
	case e.unhealthy[c.image]:
		return &engine.Health{Status: engine.HealthUnhealthy, Output: "runner unhealthy by design"}, nil
	}
	return &engine.Health{Status: engine.HealthHealthy, Output: "runner healthy: waiting for a job"}, nil
}

func (e *upEngine) StopContainer(_ context.Context, name string, _ time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log("stop %s", name)
	if c := e.byName[name]; c != nil {
		c.running = false
	}
	return nil
}

func (e *upEngine) StartContainer(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, c := range e.byName {
		if c.id == id || name == id {
			c.running = true
			delete(e.signalled, c.id) // a new process: not drained
			e.log("start %s %s", name, c.image)
			return nil
		}
	}
	return engine.ErrNotFound
}

func (e *upEngine) CreateContainer(_ context.Context, s *engine.ContainerSpec) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byName[s.Name] != nil {
		return "", engine.ErrConflict
	}
	e.next++
	c := &upContainer{id: fmt.Sprintf("new%010d", e.next), image: s.Image, env: s.Env}
	e.byName[s.Name] = c
	e.log("create %s %s", s.Name, s.Image)
	return c.id, nil
}

func (e *upEngine) RemoveContainer(_ context.Context, name string, _ bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byName[name] == nil {
		return engine.ErrNotFound
	}
	delete(e.byName, name)
	e.log("remove %s", name)
	return nil
}

func (e *upEngine) SignalContainer(_ context.Context, name, sig string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.byName[name]
	if c == nil {
		return engine.ErrNotFound
	}
	e.signalled[c.id] = true
	e.log("signal %s %s", name, sig)
	return nil
}

func (e *upEngine) RenameContainer(_ context.Context, name, to string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.byName[name]
	if c == nil {
		return engine.ErrNotFound
	}
	if e.byName[to] != nil {
		return engine.ErrConflict
	}
	delete(e.byName, name)
	e.byName[to] = c
	e.log("rename %s %s", name, to)
	return nil
}

func (e *upEngine) WaitContainer(context.Context, string) (int, error) { return 0, nil }

// refusing verifies images, refusing those in refuse.
type refusing map[string]bool

func (r refusing) VerifyAndPull(_ context.Context, ref string) (string, error) {
	if r[ref] {
		return "", errors.New("image is not signed by a trusted key")
	}
	return ref, nil
}

func upgradeDaemon(t *testing.T, e *upEngine, images Images, successorOf string) *Daemon {
	t.Helper()
	cfg := &config.Config{CollectorID: "col_test", Image: imgOld, HeartbeatIntervalSec: 1}
	d := NewWith(cfg, e, func(context.Context) (string, error) { return "unchanged", nil }, nil, slog.New(slog.NewTextHandler(&testutil.Buffer{}, nil)))
	d.Upgrades = &Upgrades{Engine: e, Images: images, Window: 300 * time.Millisecond, Drain: 300 * time.Millisecond, Poll: 10 * time.Millisecond, SuccessorImage: successorOf}
	d.image = d.currentImage(context.Background())
	return d
}

func waitUpgrade(t *testing.T, d *Daemon) *api.UpgradeStatus {
	t.Helper()
	d.Upgrades.wg.Wait()
	s := d.Upgrades.Status()
	if s == nil {
		t.Fatal("no upgrade status")
	}
	return s
}

// TestUpgradeRefusedReplacesNothing: an image the collector's trust root
// refuses is reported refused with the reason, and nothing is touched.
func TestUpgradeRefusedReplacesNothing(t *testing.T) {
	e := newUpEngine()
	d := upgradeDaemon(t, e, refusing{imgNew: true}, "")
	d.maybeUpgrade(t.Context(), imgNew)
	s := waitUpgrade(t, d)
	if s.State != api.UpgradeRefused || !strings.Contains(s.Reason, "not signed by a trusted key") {
		t.Errorf("status = %+v, want refused with the reason", s)
	}
	if len(e.events) != 0 {
		t.Errorf("a refused upgrade touched the engine: %q", e.events)
	}
	d.maybeUpgrade(t.Context(), imgNew) // asked again by a heartbeat: not tried again
	d.Upgrades.wg.Wait()
	if len(e.events) != 0 {
		t.Errorf("a refused image was tried again: %q", e.events)
	}
}

// TestUpgradeRollsBackAnUnhealthyRunner: the runner drains, is replaced,
// does not turn healthy within the window, and is put back on the old
// image; the rollback and its reason are reported and the image is not
// tried again.
func TestUpgradeRollsBackAnUnhealthyRunner(t *testing.T) {
	e := newUpEngine()
	e.unhealthy[imgNew] = true
	d := upgradeDaemon(t, e, refusing{}, "")
	d.maybeUpgrade(t.Context(), imgNew)
	s := waitUpgrade(t, d)
	if s.State != api.UpgradeRolledBack || !strings.Contains(s.Reason, "not healthy within") || !strings.Contains(s.Reason, "unhealthy by design") {
		t.Errorf("status = %+v, want rolled back saying why", s)
	}
	for _, ev := range []string{"signal collector-runner USR1", "create collector-runner " + imgNew, "create collector-runner " + imgOld} {
		if !e.has(ev) {
			t.Errorf("no %q in %q", ev, e.events)
		}
	}
	if got := e.image("collector-runner"); got != imgOld {
		t.Errorf("runner after the rollback runs %s, want the old image", got)
	}
	if e.has("create collector-daemon-next " + imgNew) {
		t.Errorf("a new daemon was started for an upgrade whose runner failed: %q", e.events)
	}
}

// TestUpgradeDrainTimeoutStopsTheRunner: a runner whose jobs do not end
// within the drain timeout is stopped (its jobs' leases expire and the
// new runner runs them again).
func TestUpgradeDrainTimeoutStopsTheRunner(t *testing.T) {
	e := newUpEngine()
	e.noDrain = true
	d := upgradeDaemon(t, e, refusing{}, "")
	d.maybeUpgrade(t.Context(), imgNew)
	waitUpgrade(t, d)
	if !e.has("stop collector-runner") {
		t.Errorf("a runner that did not drain was not stopped: %q", e.events)
	}
}

// TestUpgradeSuccessorTakesOver: with a healthy runner on the new image,
// the old daemon starts the new one under the successor's name; the
// successor, once acknowledged, removes the old daemon and takes its
// name, and reports success; run again (a restart) it changes nothing.
// A successor that does not take over within the window is removed and
// the runner rolled back.
func TestUpgradeSuccessorTakesOver(t *testing.T) {
	e := newUpEngine()
	d := upgradeDaemon(t, e, refusing{}, "")
	oldCtx, killOld := context.WithCancel(t.Context())
	defer killOld()
	d.Upgrades.Window = time.Minute
	d.maybeUpgrade(oldCtx, imgNew)
	// While it waits for the successor, the successor takes over.
	waitFor(t, func() bool { return e.image("collector-daemon-next") != "" })
	e.mu.Lock()
	next := e.byName["collector-daemon-next"]
	e.mu.Unlock()
	if next == nil || next.image != imgNew || next.env[SuccessorEnv] != imgNew {
		t.Fatalf("successor = %+v, want the new image with %s", next, SuccessorEnv)
	}
	if got := e.image("collector-runner"); got != imgNew {
		t.Errorf("runner runs %s before the daemon is replaced, want the new image", got)
	}
	succ := upgradeDaemon(t, e, refusing{}, imgNew)
	if succ.image != imgNew {
		t.Fatalf("the successor finds its image %s, want the new one", succ.image)
	}
	succ.afterAck(t.Context(), &api.HeartbeatAnswer{DesiredImage: imgNew})
	if s := succ.Upgrades.Status(); s == nil || s.State != api.UpgradeSucceeded || s.Image != imgNew {
		t.Fatalf("successor status = %+v, want succeeded", s)
	}
	if !e.has("remove collector-daemon") || !e.has("rename collector-daemon-next collector-daemon") || e.image("collector-daemon") != imgNew {
		t.Fatalf("take over: %q", e.events)
	}
	// Removing the old daemon's container kills its process.
	killOld()
	d.Upgrades.wg.Wait()
	if got := e.image("collector-runner"); got != imgNew {
		t.Errorf("after the take-over the runner runs %s", got)
	}
	// Once taken over, a later upgrade's status is not overwritten.
	succ.Upgrades.set(api.UpgradeRolledBack, imgOld, "a later upgrade")
	succ.afterAck(t.Context(), nil)
	if s := succ.Upgrades.Status(); s.State != api.UpgradeRolledBack {
		t.Errorf("after the take-over, a later status became %+v", s)
	}
	n := len(e.events)
	again := upgradeDaemon(t, e, refusing{}, imgNew)
	again.afterAck(t.Context(), nil)
	if len(e.events) != n || again.Upgrades.Status().State != api.UpgradeSucceeded {
		t.Errorf("a restarted successor did more: %q", e.events[n:])
	}
}

// TestUpgradeWithoutTakeOverRollsBack: a successor that never takes over
// is removed after the window and the runner goes back.
func TestUpgradeWithoutTakeOverRollsBack(t *testing.T) {
	e := newUpEngine()
	d := upgradeDaemon(t, e, refusing{}, "")
	d.maybeUpgrade(t.Context(), imgNew)
	s := waitUpgrade(t, d)
	if s.State != api.UpgradeRolledBack || !strings.Contains(s.Reason, "did not take over") {
		t.Errorf("status = %+v", s)
	}
	if !e.has("remove collector-daemon-next") || e.image("collector-runner") != imgOld {
		t.Errorf("after a failed take-over: %q", e.events)
	}
}

// TestUpgradeCrashAtEachStep: the old daemon dies at each step of an
// upgrade (after the pull, after the drain, after the runner's
// replacement, while both daemons exist); the engine restarts it (a new
// process on the same containers), the platform still asks, and the
// collector ends on the new image, daemon and runner, with no leftover.
// A successor that dies between removing the old daemon and taking its
// name comes back and takes it.
func TestUpgradeCrashAtEachStep(t *testing.T) {
	for _, at := range []string{"pulled", "drained", "runner", "successor", "successor-mid-take-over"} {
		t.Run(at, func(t *testing.T) {
			e := newUpEngine()
			d := upgradeDaemon(t, e, refusing{}, "")
			crashStep := at
			if at == "successor-mid-take-over" {
				crashStep = "successor"
			}
			d.Upgrades.CrashAt = func(step string) bool { return step == crashStep }
			d.maybeUpgrade(t.Context(), imgNew)
			d.Upgrades.wg.Wait() // died there

			// The engine restarts the old daemon: what it finds, it runs with.
			restarted := upgradeDaemon(t, e, refusing{}, "")
			if restarted.image != imgOld {
				t.Fatalf("the restarted old daemon runs %s, want the old image", restarted.image)
			}
			restarted.tidySuccessor(t.Context())
			if at == "drained" && !e.has("stop collector-runner") {
				t.Errorf("the runner left drained was not restarted: %q", e.events)
			}
			ctx, kill := context.WithCancel(t.Context())
			defer kill()
			// The platform still asks: with no successor running it upgrades
			// again; with one running it waits for it, touching nothing.
			succRunning := e.image("collector-daemon-next") != ""
			e.mu.Lock()
			before, looks := len(e.events), e.successorLooks
			e.mu.Unlock()
			restarted.Upgrades.Window = time.Minute
			restarted.maybeUpgrade(ctx, imgNew)
			if succRunning {
				// It looked at the successor (and, finding it running,
				// waits) before the successor takes over below.
				waitFor(t, func() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.successorLooks > looks })
			}
			waitFor(t, func() bool { return e.image("collector-daemon-next") == imgNew })
			succ := upgradeDaemon(t, e, refusing{}, imgNew)
			if at == "successor-mid-take-over" {
				// It removed the old daemon and died before the rename.
				if err := e.RemoveContainer(ctx, "collector-daemon", true); err != nil {
					t.Fatal(err)
				}
				succ = upgradeDaemon(t, e, refusing{}, imgNew) // restarted by its policy
			}
			succ.afterAck(ctx, nil)
			kill() // the old daemon's container is gone: its process ends
			restarted.Upgrades.wg.Wait()
			if succRunning {
				// Signals and creations since it was asked again are an
				// upgrade's; the successor's take-over only removes and
				// renames.
				e.mu.Lock()
				for _, ev := range e.events[before:] {
					if strings.HasPrefix(ev, "signal ") || strings.HasPrefix(ev, "create ") {
						t.Errorf("the restarted old daemon acted beside its running successor: %q", e.events[before:])
						break
					}
				}
				e.mu.Unlock()
			}
			if s := succ.Upgrades.Status(); s == nil || s.State != api.UpgradeSucceeded {
				t.Errorf("status %+v, want succeeded", s)
			}
			if dm, rn, next := e.image("collector-daemon"), e.image("collector-runner"), e.image("collector-daemon-next"); dm != imgNew || rn != imgNew || next != "" {
				t.Errorf("after the recovery: daemon %q, runner %q, successor left %q; want both new, none left (%q)", dm, rn, next, e.events)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
