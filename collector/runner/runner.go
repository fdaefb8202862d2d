package runner

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
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

// Config is what a runner needs.
type Config struct {
	CollectorID string
	HPKEKey     *crypto.HPKEKey
	PlatformKey ed25519.PublicKey
	// StateDir keeps the record of finished and in-flight jobs.
	StateDir string
	// MaxParallel bounds the jobs run at once.
	MaxParallel int
	// FreeMemory reports the host's free memory (0 = unknown).
	FreeMemory func() int64
	// DefaultNetwork is the network of jobs whose integration names none
	// ("" = the engine's default).
	DefaultNetwork string
	// PollWait is how long one next call waits (≤ api.MaxLongPoll).
	PollWait time.Duration
	// BatchRecords and BatchBytes bound one records upload.
	BatchRecords int
	BatchBytes   int
	// StatsInterval is how often peak memory and CPU are sampled.
	StatsInterval time.Duration
	// StopTimeout is the grace a timed-out or cancelled job gets.
	StopTimeout time.Duration
	// RetryBackoff is the first pause after a failed platform call.
	RetryBackoff time.Duration
	Now          func() time.Time
}

// DefaultConfig returns the defaults for the optional fields.
func DefaultConfig() Config {
	return Config{
		MaxParallel:   4,
		PollWait:      api.MaxLongPoll,
		BatchRecords:  5000,
		BatchBytes:    4 << 20,
		StatsInterval: time.Second,
		StopTimeout:   10 * time.Second,
		RetryBackoff:  500 * time.Millisecond,
		Now:           time.Now,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.CollectorID == "":
		return errors.New("runner config: CollectorID is empty")
	case c.HPKEKey == nil:
		return errors.New("runner config: HPKEKey is nil")
	case len(c.PlatformKey) != ed25519.PublicKeySize:
		return errors.New("runner config: PlatformKey is not an Ed25519 public key")
	case c.StateDir == "":
		return errors.New("runner config: StateDir is empty")
	case c.MaxParallel < 1:
		return fmt.Errorf("runner config: MaxParallel %d: want at least 1", c.MaxParallel)
	case c.BatchRecords < 1 || c.BatchRecords > api.MaxBatchRecords:
		return fmt.Errorf("runner config: BatchRecords %d: want 1..%d", c.BatchRecords, api.MaxBatchRecords)
	case c.BatchBytes < api.MaxRecordBytes || c.BatchBytes > api.MaxBatchBytes-api.MaxRecordBytes:
		return fmt.Errorf("runner config: BatchBytes %d: want %d..%d", c.BatchBytes, api.MaxRecordBytes, api.MaxBatchBytes-api.MaxRecordBytes)
	case c.PollWait <= 0 || c.PollWait > api.MaxLongPoll:
		return fmt.Errorf("runner config: PollWait %v: want up to %v", c.PollWait, api.MaxLongPoll)
	}
	return nil
}

// Runner runs jobs.
type Runner struct {
	cfg    Config
	api    JobAPI
	eng    engine.Engine
	images Images
	labels selinux.Labeler
	state  *state
	log    *slog.Logger

	// engineDown is what the last engine check found (Run's alone).
	engineDown bool

	mu      sync.Mutex
	running map[string]*jobRun // by job ID
}

// New returns a runner; it loads its state but starts nothing.
func New(cfg Config, jobs JobAPI, eng engine.Engine, images Images, labels selinux.Labeler, log *slog.Logger) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := openState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, api: jobs, eng: eng, images: images, labels: labels, state: st, log: log, running: map[string]*jobRun{}}, nil
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

// Run leases and runs jobs until ctx ends; it waits for the jobs in
// flight before returning. It asks for a job only while the engine
// answers (a job leased then would only fail), and first removes what an
// earlier runner left.
func (r *Runner) Run(ctx context.Context) error {
	slots := make(chan struct{}, r.cfg.MaxParallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	cleaned := false
	backoff, engineBackoff := r.cfg.RetryBackoff, r.cfg.RetryBackoff
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		if !r.engineUp(ctx) {
			<-slots
			sleep(ctx, engineBackoff)
			engineBackoff = min(engineBackoff*2, maxEngineBackoff)
			continue
		}
		engineBackoff = r.cfg.RetryBackoff
		if !cleaned {
			cleaned = r.cleanLeftovers(ctx)
		}
		lease, err := r.api.Next(ctx, api.NextRequest{FreeMemoryBytes: r.freeMemory(), WaitSeconds: int(r.cfg.PollWait / time.Second)})
		if err != nil || lease == nil {
			<-slots
			if err != nil && ctx.Err() == nil {
				r.log.Warn("asking for a job failed", "err", err, "retry_in", backoff)
				sleep(ctx, backoff)
				backoff = min(backoff*2, 30*time.Second)
			}
			continue
		}
		backoff = r.cfg.RetryBackoff
		if r.handover(lease) {
			<-slots
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			r.runLease(ctx, lease)
		}()
	}
	return nil
}

// Engine checks: each is bounded, and a runner whose engine does not answer
// checks again after a pause that doubles up to maxEngineBackoff.
const (
	engineCheckTimeout = 10 * time.Second
	maxEngineBackoff   = 30 * time.Second
)

// engineUp reports whether the engine answers (Info), logging only when
// that changes, not at every check.
func (r *Runner) engineUp(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, engineCheckTimeout)
	defer cancel()
	_, err := r.eng.Info(cctx)
	if ctx.Err() != nil {
		return false
	}
	switch {
	case err != nil && !r.engineDown:
		r.log.Warn("container engine unreachable: not asking for jobs until it answers", "err", err)
	case err == nil && r.engineDown:
		r.log.Info("container engine reachable again: asking for jobs")
	}
	r.engineDown = err != nil
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

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
