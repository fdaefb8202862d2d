package runner

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/selinux"
)

// JobAPI is the part of the platform's collector API the runner uses
// (api.CollectorClient implements it).
type JobAPI interface {
	Next(ctx context.Context, req api.NextRequest) (*api.Lease, error)
	Renew(ctx context.Context, jobID, leaseID string) (*api.RenewResponse, error)
	MarkRunning(ctx context.Context, jobID, leaseID string) error
	UploadRecords(ctx context.Context, jobID, leaseID string, seq int, ndjson []byte) (*api.IngestResult, error)
	UploadLogs(ctx context.Context, jobID, leaseID string, seq int, text []byte) error
	Finish(ctx context.Context, jobID string, req api.FinishRequest) error
}

// Images verifies an image reference against the signature policy and
// pulls it, returning the name@sha256 reference containers are created from.
type Images interface {
	VerifyAndPull(ctx context.Context, ref string) (string, error)
}

// Labels on every job container.
const (
	LabelRole        = "io.collector.role"
	LabelJob         = "io.collector.job"
	LabelIntegration = "io.collector.integration"
	LabelCollector   = "io.collector.collector"
	RoleJob          = "job"
	// ConfigPath is where a job reads its config (docs/integration-contract.md).
	ConfigPath = "/run/collector/config.json"
)

// Runner runs jobs.
type Runner struct {
	cfg    Config
	api    JobAPI
	eng    Engine
	images Images
	labels selinux.Labeler
	state  *state
	log    *slog.Logger

	mu       sync.Mutex
	running  map[string]*jobRun // by job ID: the runs holding their integration
	released chan struct{}      // closed, and replaced, when a run lets its integration go

	drain     chan struct{} // closed by Drain
	drainOnce sync.Once
}

// Drain asks Run to lease no more jobs and to return once the jobs it
// runs have ended (reported and cleaned up): how the daemon empties the
// runner before it replaces it (SIGUSR1).
func (r *Runner) Drain() { r.drainOnce.Do(func() { close(r.drain) }) }

// New returns a runner; it loads its state but starts nothing.
func New(cfg Config, jobs JobAPI, eng Engine, images Images, labels selinux.Labeler, log *slog.Logger) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := openState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, api: jobs, eng: eng, images: images, labels: labels, state: st, log: log,
		running: map[string]*jobRun{}, released: make(chan struct{}), drain: make(chan struct{})}, nil
}

// Running returns the IDs of the jobs in flight.
func (r *Runner) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.running))
	for id := range r.running {
		ids = append(ids, id)
	}
	return ids
}

// Run leases and runs jobs until ctx ends, at most MaxParallel at once; it
// returns once every job it started has returned.
func (r *Runner) Run(ctx context.Context) error {
	slots := make(chan struct{}, r.cfg.MaxParallel)
	var jobs sync.WaitGroup
	defer jobs.Wait()
	// Polling ends with ctx or with Drain; the jobs run on under ctx.
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	go func() {
		select {
		case <-r.drain:
			r.log.Info("draining: no new jobs; the running ones finish", "running", len(r.Running()))
			stopPolling()
		case <-pollCtx.Done():
		}
	}()
	p := &poller{r: r, backoff: r.cfg.RetryBackoff, engineBackoff: r.cfg.RetryBackoff}
	for pollCtx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-pollCtx.Done():
			return nil
		}
		switch lease := p.next(pollCtx); {
		case lease == nil, r.handover(lease):
			<-slots
		default:
			// A lease that came back as polling stopped is still run.
			jobs.Go(func() {
				defer func() { <-slots }()
				r.runLease(ctx, lease)
			})
		}
	}
	return nil
}

// Pauses of the job loop: each engine check is bounded, and a failed check
// or next call is tried again after a pause that doubles up to a bound.
const (
	engineCheckTimeout = 10 * time.Second
	maxEngineBackoff   = 30 * time.Second
	maxNextBackoff     = 30 * time.Second
)

// poller asks the platform for jobs: only while the engine answers (a job
// leased then would only fail), after removing what an earlier runner
// left, pausing after failures. It belongs to Run's loop alone.
type poller struct {
	r                      *Runner
	cleaned                bool
	engineDown             bool // what the last engine check found
	backoff, engineBackoff time.Duration
}

// next returns a lease, or nil when none came (or the loop paused).
func (p *poller) next(ctx context.Context) *api.Lease {
	if !p.engineUp(ctx) {
		p.engineBackoff = pause(ctx, p.engineBackoff, maxEngineBackoff)
		return nil
	}
	p.engineBackoff = p.r.cfg.RetryBackoff
	if !p.cleaned {
		p.cleaned = p.r.cleanLeftovers(ctx)
	}
	req := api.NextRequest{FreeMemoryBytes: p.r.freeMemory(), WaitSeconds: int(p.r.cfg.PollWait / time.Second)}
	lease, err := p.r.api.Next(ctx, req)
	switch {
	case err != nil && ctx.Err() == nil:
		p.r.log.Warn("asking for a job failed", "err", err, "retry_in", p.backoff)
		p.backoff = pause(ctx, p.backoff, maxNextBackoff)
	case err == nil:
		p.backoff = p.r.cfg.RetryBackoff
	}
	return lease
}

// engineUp reports whether the engine answers (Ping), logging only when
// that changes, not at every check.
func (p *poller) engineUp(ctx context.Context) bool {
	err := p.r.checkEngine(ctx)
	if ctx.Err() != nil {
		return false
	}
	switch {
	case err != nil && !p.engineDown:
		p.r.log.Warn("container engine unreachable: not asking for jobs until it answers", "err", err)
	case err == nil && p.engineDown:
		p.r.log.Info("container engine reachable again: asking for jobs")
	}
	p.engineDown = err != nil
	return err == nil
}

// cleanLeftovers runs CleanLeftovers, reporting whether it went through.
func (r *Runner) cleanLeftovers(ctx context.Context) bool {
	if err := r.CleanLeftovers(ctx); err != nil {
		r.log.Warn("cleaning leftovers failed; trying again before the next job", "err", err)
		return false
	}
	return true
}

// freeMemory is the host's free memory less what running jobs may still take.
func (r *Runner) freeMemory() int64 {
	if r.cfg.FreeMemory == nil {
		return 0
	}
	free := r.cfg.FreeMemory()
	r.mu.Lock()
	for _, j := range r.running {
		free -= j.headroom()
	}
	r.mu.Unlock()
	return max(free, 1) // 0 would mean "unknown": nothing fits
}

// claimWait claims the job's integration in its mode, waiting for a run
// of it that is on its way out (cancelled, or its lease lost) to release
// it; false if it stays busy. A job refused here would fail for good, so it waits instead.
func (r *Runner) claimWait(ctx context.Context, j *jobRun) bool {
	t := time.NewTimer(r.cfg.StopTimeout + time.Minute)
	defer t.Stop()
	for {
		freed, ok := r.claim(j)
		if ok {
			return true
		}
		select {
		case <-freed:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// claim marks the job's integration busy in the job's mode; if it already
// is, it returns a channel closed at the next release. A validation runs
// beside its integration's collection, as the platform leases it (one
// active job per integration and mode): it ingests nothing.
func (r *Runner) claim(j *jobRun) (<-chan struct{}, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, other := range r.running {
		if other.job.IntegrationID == j.job.IntegrationID && other.validating() == j.validating() {
			return r.released, false
		}
	}
	r.running[j.job.JobID] = j
	return nil, true
}

// release lets j's integration go, if j holds it.
func (r *Runner) release(j *jobRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j.job == nil || r.running[j.job.JobID] != j {
		return
	}
	delete(r.running, j.job.JobID)
	close(r.released)
	r.released = make(chan struct{})
}

// runningJob returns the run of job id that holds its integration, or nil.
func (r *Runner) runningJob(id string) *jobRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[id]
}

// pause sleeps d (or until ctx ends) and returns the next pause, doubled
// up to limit.
func pause(ctx context.Context, d, limit time.Duration) time.Duration {
	sleep(ctx, d)
	return min(2*d, limit)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
