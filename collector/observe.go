package collector

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/health"
	"github.com/collectorhq/collector/collector/housekeeping"
	"github.com/collectorhq/collector/collector/joblogs"
	"github.com/collectorhq/collector/collector/runner"
)

// The runner is observed from outside, through what it calls: its job
// API, its engine and its image verifier. That keeps the operator's
// concerns (health, local job logs, image bookkeeping) out of the job
// loop.

// progress is the runner's health status: each call the runner makes to
// the platform or the engine's Ping (its engine check, once a turn of the
// job loop while it waits) shows the loop moving. A loop that makes no
// call for the stall bound is stuck, or hangs in a call: its health check
// fails and the daemon restarts it. Jobs in flight call Renew at a third
// of their lease, so a runner whose every slot is busy keeps moving.
type progress struct {
	path  string
	stall time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu   sync.Mutex
	last time.Time
}

// hold writes what without a deadline: a drained runner is well, and waits.
func (p *progress) hold(what string) {
	if p == nil || p.path == "" {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := health.Write(p.path, health.Status{Role: "runner", At: now, Until: now.Add(100 * 365 * 24 * time.Hour), OK: true, Detail: what}); err != nil {
		p.log.Warn("writing the health status failed", "err", err)
	}
}

// note records progress, writing the file at most once a second.
func (p *progress) note(what string) {
	if p == nil || p.path == "" {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.last) < time.Second {
		return
	}
	p.last = now
	err := health.Write(p.path, health.Status{Role: "runner", At: now, Until: now.Add(p.stall), OK: true, Detail: what})
	if err != nil {
		p.log.Warn("cannot write the health status", "err", err)
	}
}

// watchedAPI is the runner's job API, noting progress, keeping a local
// copy of each job's (redacted) logs.
type watchedAPI struct {
	runner.JobAPI
	p    *progress
	logs *joblogs.Store
	log  *slog.Logger
	now  func() time.Time
}

func (w *watchedAPI) Next(ctx context.Context, req api.NextRequest) (*api.Lease, error) {
	w.p.note("asking the platform for a job")
	l, err := w.JobAPI.Next(ctx, req)
	w.p.note("asked the platform for a job")
	return l, err
}

func (w *watchedAPI) Renew(ctx context.Context, jobID, leaseID string) (*api.RenewResponse, error) {
	w.p.note("running jobs")
	return w.JobAPI.Renew(ctx, jobID, leaseID)
}

func (w *watchedAPI) UploadLogs(ctx context.Context, jobID, leaseID string, seq int, text []byte) error {
	// The runner redacted text of the job's secrets before this call.
	if err := w.logs.Append(jobID, seq, text); err != nil {
		w.log.Debug("cannot keep the job's logs on the host", "job", jobID, "err", err)
	}
	return w.JobAPI.UploadLogs(ctx, jobID, leaseID, seq, text)
}

func (w *watchedAPI) Finish(ctx context.Context, jobID string, req api.FinishRequest) error {
	err := w.JobAPI.Finish(ctx, jobID, req)
	how := "exit " + strconv.Itoa(req.ExitCode)
	if req.Error != "" {
		how += ", failed (the platform has the error)"
	}
	if ferr := w.logs.Finish(jobID, how, w.now()); ferr != nil {
		w.log.Debug("cannot note the job's end on the host", "job", jobID, "err", ferr)
	}
	w.p.note("finished a job")
	return err
}

// watchedEngine notes progress at each engine check of the job loop.
type watchedEngine struct {
	runner.Engine
	p *progress
}

func (w *watchedEngine) Ping(ctx context.Context) error {
	w.p.note("checking the engine")
	return w.Engine.Ping(ctx)
}

// recordingImages notes each image a job uses, for housekeeping.
type recordingImages struct {
	Images
	ledger *housekeeping.Ledger
	log    *slog.Logger
	now    func() time.Time
}

func (r *recordingImages) VerifyAndPull(ctx context.Context, ref string) (string, error) {
	d, err := r.Images.VerifyAndPull(ctx, ref)
	if err == nil {
		if lerr := r.ledger.Record(ref, d, r.now()); lerr != nil {
			r.log.Warn("cannot record the image's use", "image", d, "err", lerr)
		}
	}
	return d, err
}
