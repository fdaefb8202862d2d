// Package daemon is the collector's long-running supervisor role: it
// heartbeats to the platform (version, engine, host capacity, running jobs,
// the runner's state), keeps its access token fresh through the client, and
// brings collector-runner back when it is gone or stopped.
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/host"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
)

// Platform is the part of the collector API the daemon uses.
type Platform interface {
	Heartbeat(ctx context.Context, hb api.Heartbeat) error
}

// Daemon supervises one collector.
type Daemon struct {
	cfg      *config.Config
	eng      engine.Engine
	platform Platform
	log      *slog.Logger
	// Interval overrides the heartbeat interval from enrollment (tests).
	Interval time.Duration
	// WatchRunner turns the runner supervision on.
	WatchRunner bool
}

// New returns a daemon.
func New(cfg *config.Config, eng engine.Engine, p Platform, log *slog.Logger) *Daemon {
	d := &Daemon{cfg: cfg, eng: eng, platform: p, log: log, WatchRunner: true}
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
	for {
		state := d.checkRunner(ctx)
		hb := d.heartbeat(ctx, state)
		if err := d.platform.Heartbeat(ctx, hb); err != nil && ctx.Err() == nil {
			d.log.Warn("heartbeat failed", "err", err)
		} else if err == nil {
			d.log.Debug("heartbeat sent", "runner", state, "running_jobs", hb.RunningJobs)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// checkRunner returns the runner's state, restarting it if it is gone or
// stopped.
func (d *Daemon) checkRunner(ctx context.Context) string {
	c, err := d.eng.InspectContainer(ctx, install.RunnerName)
	switch {
	case err == nil && c.Running:
		return "running"
	case err != nil && !errors.Is(err, engine.ErrNotFound):
		d.log.Warn("inspecting the runner failed", "err", err)
		return "unknown"
	case !d.WatchRunner:
		if err != nil {
			return "missing"
		}
		return c.State
	}
	was := "missing"
	if err == nil {
		was = c.State
	}
	what, err := install.EnsureRunner(ctx, d.eng, d.cfg)
	if err != nil {
		d.log.Error("bringing the runner back failed", "was", was, "err", err)
		return was
	}
	d.log.Warn("runner was not running: brought it back", "was", was, "action", what)
	return "restarted"
}

func (d *Daemon) heartbeat(ctx context.Context, runnerState string) api.Heartbeat {
	hb := api.Heartbeat{Version: buildinfo.Version, RunnerState: runnerState}
	if info, err := d.eng.Info(ctx); err == nil {
		hb.Engine = api.Engine{Kind: string(info.Kind), Version: info.Version}
	}
	c := host.Read()
	hb.Capacity = api.Capacity{CPUs: c.CPUs, MemoryTotalBytes: c.MemoryTotalBytes, MemoryFreeBytes: c.MemoryFreeBytes}
	if jobs, err := d.eng.ListContainers(ctx, map[string]string{"io.collector.role": "job", "io.collector.collector": d.cfg.CollectorID}); err == nil {
		for _, j := range jobs {
			if j.Running {
				hb.RunningJobs++
			}
		}
	}
	return hb
}
