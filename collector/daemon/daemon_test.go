package daemon_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/daemon"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/testutil"
)

// fakeEngine answers Info, and knows one container, the runner, in state
// runner (running unless set), while err is nil; with err set, every call
// fails with it.
type fakeEngine struct {
	mu     sync.Mutex
	err    error
	runner string
	// health is the runner's health check result ("" none); stops and
	// starts count the restarts of the runner.
	health        string
	stops, starts int
	// infos counts the Info calls; version, when set, is the version Info
	// gives.
	infos   int
	version string
}

var _ daemon.Engine = (*fakeEngine)(nil)

func (e *fakeEngine) fail() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *fakeEngine) Info(ctx context.Context) (*engine.Info, error) {
	if err := e.fail(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.infos++
	version := cmp.Or(e.version, "4.3.1")
	return &engine.Info{Kind: engine.KindPodman, Version: version, Storage: engine.Storage{Root: "/var/lib/containers/storage", TotalBytes: 100 << 30, UsedBytes: 95 << 30}}, nil
}

func (e *fakeEngine) RunHealthCheck(ctx context.Context, id string) (*engine.Health, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.health == "" {
		return nil, fmt.Errorf("health check of %s: %w", id, engine.ErrNotFound)
	}
	return &engine.Health{Status: e.health, FailingStreak: 3, Output: "runner unhealthy: no progress since \x1b[31m"}, nil
}

func (e *fakeEngine) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stops++
	return nil
}

func (e *fakeEngine) StartContainer(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.starts++
	e.health = engine.HealthStarting
	return nil
}

func (e *fakeEngine) InspectContainer(ctx context.Context, id string) (*engine.Container, error) {
	if err := e.fail(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.runner {
	case "", "running":
		return &engine.Container{Name: id, State: "running", Running: true}, nil
	case "missing":
		return nil, fmt.Errorf("inspect %s: %w", id, engine.ErrNotFound)
	}
	return &engine.Container{Name: id, State: e.runner}, nil
}

func (e *fakeEngine) ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	if err := e.fail(); err != nil {
		return nil, err
	}
	return []engine.Container{{Running: true}, {Running: false}}, nil
}

// beats is the platform: it hands each heartbeat to the test.
type beats chan api.Heartbeat

func (b beats) Beat(ctx context.Context, hb api.Heartbeat) (*api.HeartbeatAnswer, error) {
	select {
	case b <- hb:
	case <-ctx.Done():
	}
	return &api.HeartbeatAnswer{}, nil
}

// TestHeartbeatSaysWhyTheEngineIsUnreachable: while the engine socket does
// not answer, each heartbeat carries why (one printable line of at most
// 512 bytes, no credentials) and an unknown runner state, so the platform
// shows the collector degraded; the daemon logs the failure once, and the
// heartbeats say all is well once the engine answers again.
func TestHeartbeatSaysWhyTheEngineIsUnreachable(t *testing.T) {
	eng := &fakeEngine{err: fmt.Errorf("%w: ping podman at ssh://core:hunter2@10.0.0.5/run/podman/podman.sock: dial: connection refused\n\x1b[31mretry\u202e %s",
		engine.ErrUnavailable, strings.Repeat("é", 400))}
	b := make(beats)
	logs := &testutil.Buffer{}
	noStart := func(context.Context) (string, error) { return "", errors.New("not in this test") }
	d := daemon.NewWith(&config.Config{CollectorID: "col_test"}, eng, noStart, b, slog.New(slog.NewJSONHandler(logs, nil)))
	d.Interval = 1 // as often as the test takes them
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for i := range 3 {
		hb := <-b
		if hb.EngineError == "" || hb.RunnerState == api.RunnerRunning || hb.RunnerState == api.RunnerRestarted {
			t.Fatalf("heartbeat %d while the engine fails: engine_error %q, runner_state %q", i, hb.EngineError, hb.RunnerState)
		}
		if err := hb.Validate(); err != nil {
			t.Errorf("the platform would refuse heartbeat %d: %v", i, err)
		}
		if strings.Contains(hb.EngineError, "hunter2") || !strings.Contains(hb.EngineError, "connection refused") || len(hb.EngineError) > 512 {
			t.Errorf("engine_error (%d bytes): %q", len(hb.EngineError), hb.EngineError)
		}
	}
	if n := strings.Count(logs.String(), "container engine unreachable"); n != 1 {
		t.Errorf("the engine failure was logged %d times over 3 heartbeats, want once:\n%s", n, logs)
	}

	eng.mu.Lock()
	eng.err = nil
	eng.mu.Unlock()
	<-b // possibly gathered before the engine came back
	hb := <-b
	if hb.EngineError != "" || hb.RunnerState != api.RunnerRunning || hb.Engine.Version != "4.3.1" || hb.RunningJobs != 1 {
		t.Errorf("heartbeat once the engine answers: %+v", hb)
	}
	if !strings.Contains(logs.String(), "container engine reachable again") {
		t.Errorf("the recovery was not logged:\n%s", logs)
	}
}

// TestEngineInfoAskedOnceInAWhile: the daemon asks the engine to describe
// itself (Podman's info costs it a second of CPU) once per infoMaxAge, not
// at each heartbeat; an engine that stops answering is still seen at the
// next heartbeat, and once it is back its info is asked at once (an
// engine upgraded meanwhile reports its new version).
func TestEngineInfoAskedOnceInAWhile(t *testing.T) {
	eng := &fakeEngine{}
	b := make(beats)
	noStart := func(context.Context) (string, error) { return "", errors.New("not in this test") }
	d := daemon.NewWith(&config.Config{CollectorID: "col_test"}, eng, noStart, b, slog.New(slog.DiscardHandler))
	d.Interval = 1
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixNano())
	d.Now = func() time.Time { return time.Unix(0, now.Load()) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	infos := func() int {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return eng.infos
	}
	set := func(f func(*fakeEngine)) {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		f(eng)
	}

	for range 5 {
		if hb := <-b; hb.Engine.Version != "4.3.1" || hb.Storage == nil || hb.RunnerState != api.RunnerRunning {
			t.Fatalf("heartbeat = %+v", hb)
		}
	}
	if n := infos(); n != 1 {
		t.Errorf("Info asked %d times over 5 heartbeats within %v, want once", n, daemon.InfoMaxAge)
	}
	now.Add(int64(daemon.InfoMaxAge))
	<-b
	<-b
	if n := infos(); n != 2 {
		t.Errorf("Info asked %d times once %v passed, want twice", n, daemon.InfoMaxAge)
	}

	set(func(e *fakeEngine) { e.err = fmt.Errorf("%w: connection refused", engine.ErrUnavailable) })
	<-b // possibly gathered before
	if hb := <-b; hb.EngineError == "" || hb.RunnerState == api.RunnerRunning {
		t.Errorf("heartbeat while the engine does not answer = %+v", hb)
	}
	set(func(e *fakeEngine) { e.err, e.version = nil, "5.4.2" })
	<-b
	if hb := <-b; hb.Engine.Version != "5.4.2" || hb.EngineError != "" {
		t.Errorf("heartbeat once the engine is back = %+v, want version 5.4.2", hb)
	}
}

// TestRunnerBroughtBack: a runner that is missing or stopped is brought
// back and reported restarted; one that could not be is reported in its
// state, which the platform shows as degraded.
func TestRunnerBroughtBack(t *testing.T) {
	for _, c := range []struct {
		runner   string
		startErr error
		want     string
	}{
		{"running", nil, api.RunnerRunning},
		{"missing", nil, api.RunnerRestarted},
		{"exited", nil, api.RunnerRestarted},
		{"exited", errors.New("image gone"), "exited"},
	} {
		eng := &fakeEngine{runner: c.runner}
		starts := 0
		start := func(context.Context) (string, error) { starts++; return "started", c.startErr }
		b := make(beats)
		d := daemon.NewWith(&config.Config{CollectorID: "col_test"}, eng, start, b, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		hb := <-b
		cancel()
		<-done
		if hb.RunnerState != c.want || hb.EngineError != "" || (starts > 0) != (c.runner != "running") {
			t.Errorf("runner %s, start error %v: runner_state %q (engine_error %q), %d start(s); want %q",
				c.runner, c.startErr, hb.RunnerState, hb.EngineError, starts, c.want)
		}
	}
}
