package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/health"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/termsafe"
)

// ackGrace is how long after the last acknowledged heartbeat the daemon
// is still healthy: three intervals, and the time one heartbeat may take
// when the engine is slow.
func (d *Daemon) ackGrace() time.Duration { return 3*d.Interval + 30*time.Second }

// writeHealth records the daemon's health for its container's check:
// healthy while the platform acknowledged a heartbeat recently. A failed
// heartbeat does not extend that; it only says why.
func (d *Daemon) writeHealth(beatErr error) {
	if d.HealthFile == "" {
		return
	}
	s := health.Status{Role: "daemon", At: d.Now(), OK: true}
	switch {
	case d.lastAck.IsZero():
		s.Until = d.startedAt
		s.OK = false
		s.Detail = "no heartbeat acknowledged by the platform yet"
		if beatErr != nil {
			s.Detail += ": " + oneLine(beatErr)
		}
	case beatErr != nil:
		s.At, s.Until = d.lastAck, d.lastAck.Add(d.ackGrace())
		s.Detail = "last heartbeat acknowledged at " + d.lastAck.UTC().Format(time.RFC3339) + "; the latest failed: " + oneLine(beatErr)
	default:
		s.Until = d.lastAck.Add(d.ackGrace())
		s.Detail = "heartbeat acknowledged at " + d.lastAck.UTC().Format(time.RFC3339)
	}
	if err := health.Write(d.HealthFile, s); err != nil {
		d.log.Warn("cannot write the health status", "err", err)
	}
}

func oneLine(err error) string {
	s := termsafe.String(err.Error())
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// runnerHealth runs the running runner's health check and restarts it when
// the engine finds it unhealthy: its job loop is stuck, and nothing else
// would notice. It returns the state and health to report. A restarted
// runner gets runnerRestartGrace to become healthy before another.
func (d *Daemon) runnerHealth(ctx context.Context) (string, string) {
	cctx, cancel := context.WithTimeout(ctx, engineCallTimeout+time.Minute)
	h, err := d.eng.RunHealthCheck(cctx, d.cfg.RunnerName())
	cancel()
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return api.RunnerRunning, "" // created before health checks, or just gone
	case err != nil:
		d.log.Debug("runner health check failed to run", "err", err)
		return api.RunnerRunning, ""
	case h.Status != engine.HealthUnhealthy || d.Upgrades.Busy():
		return api.RunnerRunning, h.Status
	case !d.runnerRestart.IsZero() && d.Now().Sub(d.runnerRestart) < runnerRestartGrace:
		return api.RunnerRunning, h.Status
	}
	d.runnerRestart = d.Now()
	if err := d.restartRunner(ctx); err != nil {
		d.log.Error("the runner is unhealthy and restarting it failed", "check", termsafe.String(h.Output), "err", err)
		return api.RunnerRunning, h.Status
	}
	d.runnerRestarts++
	d.log.Warn("the runner was unhealthy: restarted it", "check", termsafe.String(h.Output), "failing_streak", h.FailingStreak,
		"restarts", d.runnerRestarts)
	return api.RunnerRestarted, h.Status
}

// restartRunner stops the runner and starts it again; under systemd only
// stops it, and its unit (Restart=always) starts a new one.
func (d *Daemon) restartRunner(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ensureTimeout)
	defer cancel()
	if err := d.eng.StopContainer(ctx, d.cfg.RunnerName(), 10*time.Second); err != nil {
		return fmt.Errorf("stop %s: %w", d.cfg.RunnerName(), err)
	}
	if d.cfg.SystemdManaged() {
		return nil
	}
	if err := d.eng.StartContainer(ctx, d.cfg.RunnerName()); err != nil {
		return fmt.Errorf("start %s: %w", d.cfg.RunnerName(), err)
	}
	return nil
}

// storageUse is what the heartbeat says of the engine's storage.
func storageUse(s engine.Storage) *api.StorageUse {
	if s.TotalBytes <= 0 {
		return nil
	}
	return &api.StorageUse{TotalBytes: s.TotalBytes, UsedBytes: s.UsedBytes}
}
