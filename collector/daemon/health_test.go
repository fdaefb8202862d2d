package daemon_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/daemon"
	"github.com/collectorhq/collector/collector/health"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/testutil"
)

// oneBeat runs d until the platform has taken n heartbeats and returns the
// last.
func oneBeat(t *testing.T, d *daemon.Daemon, b beats, n int) api.Heartbeat {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var hb api.Heartbeat
	for range n {
		hb = <-b
	}
	cancel()
	<-done
	return hb
}

// TestUnhealthyRunnerRestarted: a runner whose health check the engine
// finds unhealthy is restarted (stopped and started; under systemd only
// stopped, its unit starts it) and reported restarted, once: within the
// grace that follows, it is left to become healthy.
func TestUnhealthyRunnerRestarted(t *testing.T) {
	for _, c := range []struct {
		supervisor  string
		wantStarts  int
		wantRunning string
	}{
		{config.SupervisorEngine, 1, api.RunnerRestarted},
		{config.SupervisorSystemd, 0, api.RunnerRestarted},
	} {
		eng := &fakeEngine{health: engine.HealthUnhealthy}
		b := make(beats)
		logs := &testutil.Buffer{}
		cfg := &config.Config{CollectorID: "col_test", Supervisor: c.supervisor}
		d := daemon.NewWith(cfg, eng, nil, b, slog.New(slog.NewJSONHandler(logs, nil)))
		d.Interval = time.Millisecond
		hb := oneBeat(t, d, b, 1)
		if hb.RunnerState != c.wantRunning || hb.RunnerHealth != engine.HealthUnhealthy || eng.stops != 1 || eng.starts != c.wantStarts {
			t.Errorf("%s: runner_state %q, runner_health %q, %d stop(s), %d start(s); want %q, unhealthy, 1, %d",
				c.supervisor, hb.RunnerState, hb.RunnerHealth, eng.stops, eng.starts, c.wantRunning, c.wantStarts)
		}
		if !strings.Contains(logs.String(), "the runner was unhealthy: restarted it") || strings.Contains(logs.String(), "\x1b") {
			t.Errorf("%s: the restart is not logged, or its check output is not escaped:\n%s", c.supervisor, logs)
		}
		// Still unhealthy right after: no second restart within the grace.
		eng.mu.Lock()
		eng.health = engine.HealthUnhealthy
		eng.mu.Unlock()
		hb = oneBeat(t, d, b, 2)
		if eng.stops != 1 || hb.RunnerState != api.RunnerRunning {
			t.Errorf("%s: restarted again within the grace: %d stops, state %q", c.supervisor, eng.stops, hb.RunnerState)
		}
	}
	healthy := &fakeEngine{health: engine.HealthHealthy}
	b := make(beats)
	d := daemon.NewWith(&config.Config{CollectorID: "col_test"}, healthy, nil, b, slog.New(slog.DiscardHandler))
	if hb := oneBeat(t, d, b, 1); hb.RunnerState != api.RunnerRunning || hb.RunnerHealth != engine.HealthHealthy || healthy.stops != 0 {
		t.Errorf("healthy runner: %+v, %d stops", hb, healthy.stops)
	}
}

// failing is a platform that refuses heartbeats until ok is set.
type failing struct {
	beats
	ok bool
}

func (f *failing) Beat(ctx context.Context, hb api.Heartbeat) (*api.HeartbeatAnswer, error) {
	f.beats.Beat(ctx, hb)
	if !f.ok {
		return nil, errors.New("platform unreachable: connection refused")
	}
	return &api.HeartbeatAnswer{}, nil
}

// TestDaemonHealthStatus: the daemon is healthy while the platform
// acknowledged a heartbeat recently, not before its first acknowledgement,
// and a failed heartbeat does not extend the last acknowledgement's grace.
func TestDaemonHealthStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	p := &failing{beats: make(beats)}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := daemon.NewWith(&config.Config{CollectorID: "col_test"}, &fakeEngine{}, nil, p, slog.New(slog.DiscardHandler))
	d.HealthFile, d.Interval, d.Now = path, time.Millisecond, func() time.Time { return now }
	oneBeat(t, d, p.beats, 2)
	if _, err := health.Check(path, now); !errors.Is(err, health.ErrUnhealthy) || !strings.Contains(err.Error(), "no heartbeat acknowledged") {
		t.Errorf("before any acknowledgement: %v, want unhealthy", err)
	}
	p.ok = true
	oneBeat(t, d, p.beats, 2)
	if line, err := health.Check(path, now); err != nil || !strings.Contains(line, "heartbeat acknowledged") {
		t.Errorf("after an acknowledgement: %q, %v; want healthy", line, err)
	}
	p.ok = false
	oneBeat(t, d, p.beats, 2)
	if line, err := health.Check(path, now.Add(10*time.Second)); err != nil || !strings.Contains(line, "the latest failed") {
		t.Errorf("a failure within the grace: %q, %v; want healthy, saying the latest failed", line, err)
	}
	if _, err := health.Check(path, now.Add(10*time.Minute)); !errors.Is(err, health.ErrUnhealthy) {
		t.Errorf("10 minutes without an acknowledgement: %v, want unhealthy", err)
	}
}

// TestHeartbeatCarriesStorage: the engine's container storage figures go
// up with each heartbeat.
func TestHeartbeatCarriesStorage(t *testing.T) {
	b := make(beats)
	d := daemon.NewWith(&config.Config{CollectorID: "col_test"}, &fakeEngine{}, nil, b, slog.New(slog.DiscardHandler))
	hb := oneBeat(t, d, b, 1)
	if hb.Storage == nil || hb.Storage.TotalBytes != 100<<30 || hb.Storage.UsedBytes != 95<<30 || hb.Validate() != nil {
		t.Errorf("heartbeat storage = %+v (%v)", hb.Storage, hb.Validate())
	}
}
