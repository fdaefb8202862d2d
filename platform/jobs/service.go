package jobs

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/integration/manifest"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/queue"
)

// Errors the HTTP layer maps to statuses.
var (
	// ErrNotFound: no such job for this caller (another collector's job is
	// not found, so its existence is not revealed).
	ErrNotFound = errors.New("job not found")
	// ErrLeaseLost: the lease is not the job's current one (409).
	ErrLeaseLost = errors.New("lease lost")
	// ErrInvalid: the request is wrong (400).
	ErrInvalid = errors.New("invalid request")
	// ErrBusy: the collector has as many uploads in flight as it may
	// (429); it retries.
	ErrBusy = errors.New("too many uploads in flight")
	// ErrUnavailable: the platform cannot serve the call right now (a
	// transient store error); the caller retries (503).
	ErrUnavailable = errors.New("temporarily unavailable")
)

// ErrGone says an integration no longer exists (Directory.Source).
var ErrGone = errors.New("integration deleted")

// ErrSealBroken says an integration's sealed config does not open
// (Directory.Source): its row was edited outside the platform. It is never
// retried.
var ErrSealBroken = errors.New("sealed config does not open")

// Source is an integration as a job needs it, config decrypted.
type Source struct {
	IntegrationID string
	CollectorID   string
	Pool          string // the pool it targets, when it targets one
	Image         string
	Network       string
	Config        []byte
	SecretFields  []string
	Limits        crypto.Limits
}

// Schedule is an integration's period.
type Schedule struct {
	IntegrationID string
	CollectorID   string
	Pool          string
	Interval      time.Duration
}

// Directory is what the service reads from the platform's store.
type Directory interface {
	// Source returns the integration with its config decrypted; ErrGone if
	// it was deleted, ErrSealBroken if its config cannot be opened.
	Source(ctx context.Context, integrationID string) (*Source, error)
	// CollectorHPKEKey returns the collector's HPKE public key from enrollment.
	CollectorHPKEKey(ctx context.Context, collectorID string) ([]byte, error)
	// Collector returns what admission knows of a collector: its pool and
	// the capacity of its last heartbeat. A reported job peak above its
	// memory is not believed.
	Collector(ctx context.Context, collectorID string) (Member, error)
	// PoolMembers returns the collectors of a pool (for a waiting reason).
	PoolMembers(ctx context.Context, pool string) ([]Member, error)
	// Schedules lists the integrations with a collector and a period.
	Schedules(ctx context.Context) ([]Schedule, error)
}

// Member is a collector as admission sees it.
type Member struct {
	ID   string
	Name string
	Pool string
	// Active: it heartbeats and can run jobs (not offline nor degraded).
	Active bool
	// MemoryBytes and CPUs are its capacity from its last heartbeat (0:
	// unknown, not counted).
	MemoryBytes int64
	CPUs        int
}

// Config tunes the service.
type Config struct {
	// EnvelopeTTL is how long a sealed job may wait to be opened.
	EnvelopeTTL time.Duration
	// SchedulerTick is how often the scheduler looks for due integrations.
	SchedulerTick time.Duration
	// Jitter spreads scheduled enqueues over this fraction of the period.
	Jitter float64
	// UploadsPerCollector bounds the records and logs uploads one
	// collector may have in flight; UploadsTotal bounds them all. An
	// upload holds at most one batch (api.MaxBatchBytes) and its parse.
	UploadsPerCollector int
	UploadsTotal        int
	// MaxPeakMemoryBytes caps a reported job peak when nothing tighter is
	// known (the job's own memory limit usually is).
	MaxPeakMemoryBytes int64
	// MaxJobsPerCollector bounds the jobs one collector runs at once,
	// whatever fits (0: only capacity bounds them).
	MaxJobsPerCollector int
	// RefreshEvery bounds how long a long poll goes on with the collector's
	// pool and capacity as they were (they are read again after it).
	RefreshEvery time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{EnvelopeTTL: 10 * time.Minute, SchedulerTick: time.Second, Jitter: 0.1,
		UploadsPerCollector: 4, UploadsTotal: 32, MaxPeakMemoryBytes: 64 << 30, RefreshEvery: 5 * time.Second}
}

// Service runs the job pipeline on the platform.
type Service struct {
	cfg  Config
	q    queue.Queue
	recs Records
	dir  Directory
	key  ed25519.PrivateKey
	// signingKey, if set, gives the key to sign with instead of key.
	signingKey func() ed25519.PrivateKey
	log        *slog.Logger
	m          *metrics
	now        func() time.Time
	uploads    *uploadLimiter

	// dueMu guards due, the scheduler's last word on when each
	// integration next runs (for the console).
	dueMu sync.Mutex
	due   map[string]time.Time
}

// Option is an optional knob of New.
type Option func(*Service)

// WithClock makes the service read the time from now.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithSigningKey makes the service sign each envelope with the key key
// returns then: a signing key rotation switches keys under a running
// platform (docs/auth.md).
func WithSigningKey(key func() ed25519.PrivateKey) Option {
	return func(s *Service) { s.signingKey = key }
}

// New returns the service.
func New(cfg Config, q queue.Queue, recs Records, dir Directory, signingKey ed25519.PrivateKey, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Service {
	// time.Now is only the default clock; every time the service decides
	// on reads s.now.
	s := &Service{cfg: cfg, q: q, recs: recs, dir: dir, key: signingKey, log: log, m: newMetrics(reg, q), now: time.Now,
		uploads: newUploadLimiter(cfg.UploadsPerCollector, cfg.UploadsTotal)}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Service) envelopeKey() ed25519.PrivateKey {
	if s.signingKey != nil {
		return s.signingKey()
	}
	return s.key
}

// RecordStore returns the record store.
func (s *Service) RecordStore() Records { return s.recs }

// Queue returns the queue.
func (s *Service) Queue() queue.Queue { return s.q }

// Next long-polls the collector's queue and seals the leased job to it.
// Sealing first checks that the collector is still the integration's
// target: a job leased by a collector the integration moved away from
// goes back to the queue of its new collector, and the poll goes on. A
// job whose integration is gone is canceled; one whose config no longer
// opens fails. A transient error returns the job to the queue (no attempt
// counted) and fails the call with ErrUnavailable, which the runner
// retries: it never fails a job for good.
func (s *Service) Next(ctx context.Context, collectorID string, req api.NextRequest) (*api.Lease, error) {
	// Capped before the multiplication, which a huge wait_seconds would overflow.
	wait := time.Duration(min(req.WaitSeconds, int(api.MaxLongPoll/time.Second))) * time.Second
	// Real time, not s.now: the wait bounds how long the request hangs (the
	// queue's wait is in real time too).
	deadline := time.Now().Add(wait)
	for {
		// The collector's pool and capacity are read again at least every
		// RefreshEvery of a long poll: a collector moved into a pool, or
		// reporting its capacity for the first time, is leased by what it
		// is now, not by what it was when the poll began.
		me, err := s.dir.Collector(ctx, collectorID)
		if err != nil {
			return nil, fmt.Errorf("%w: reading the collector: %v", ErrUnavailable, err)
		}
		capacity := queue.Capacity{MemoryBytes: me.MemoryBytes, CPUs: float64(me.CPUs), MaxJobs: s.cfg.MaxJobsPerCollector}
		remaining := max(0, time.Until(deadline))
		step := remaining
		if r := s.cfg.RefreshEvery; r > 0 && r < step {
			step = r
		}
		job, err := s.q.Next(ctx, queue.NextRequest{CollectorID: collectorID, Pool: me.Pool, Wait: step,
			FreeMemoryBytes: req.FreeMemoryBytes, Capacity: capacity})
		if errors.Is(err, queue.ErrNoJob) {
			if step < remaining {
				continue
			}
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		lease, err := s.sealOrReturn(ctx, me, job)
		if lease != nil || err != nil {
			return lease, err
		}
	}
}

// sealOrReturn seals a leased job, or deals with a job that cannot be
// sealed for this collector and returns (nil, nil) to poll again. A job is
// sealed only to its integration's collector or to a member of its pool,
// as they are now.
func (s *Service) sealOrReturn(ctx context.Context, me Member, job *queue.Job) (*api.Lease, error) {
	collectorID := me.ID
	src, err := s.dir.Source(ctx, job.IntegrationID)
	switch {
	case errors.Is(err, ErrGone):
		s.log.Info("job's integration is gone; canceling it", "job", job.ID)
		s.q.Cancel(context.WithoutCancel(ctx), job.ID)
		return nil, nil
	case errors.Is(err, ErrSealBroken):
		s.fail(ctx, job, "platform could not open the integration's config (its record was altered outside the platform): "+err.Error())
		return nil, nil
	case err != nil:
		return nil, s.giveBack(ctx, job, err)
	case src.CollectorID != collectorID && (src.Pool == "" || src.Pool != me.Pool):
		// Assignment moves queued jobs in its transaction, and the queue
		// sends a job whose integration moved while it was in flight to
		// the new target when its lease ends; this still catches a job
		// leased in a race with the assignment, one requeued onto the old
		// collector before the queue recorded moves (older data), and one
		// leased by a member that has since left the pool.
		to := queue.Target{CollectorID: src.CollectorID, Pool: src.Pool}
		s.log.Info("job leased by a collector its integration left; moving it", "job", job.ID, "from", collectorID, "to", to)
		if !to.Valid() {
			s.q.Cancel(context.WithoutCancel(ctx), job.ID)
		} else if _, err := s.q.Requeue(context.WithoutCancel(ctx), job.ID, job.LeaseID, to); err != nil {
			s.log.Warn("moving the job failed; its lease will expire", "job", job.ID, "err", err)
		}
		return nil, nil
	}
	lease, err := s.seal(ctx, collectorID, job, src)
	if err != nil {
		return nil, s.giveBack(ctx, job, err)
	}
	return lease, nil
}

// giveBack returns a job the platform failed to seal for a transient
// reason to its queue, without counting an attempt.
func (s *Service) giveBack(ctx context.Context, job *queue.Job, cause error) error {
	s.log.Warn("sealing the job failed; it goes back to the queue", "job", job.ID, "err", cause)
	to := queue.Target{CollectorID: job.CollectorID}
	if job.Pool != "" {
		to = queue.Target{Pool: job.Pool}
	}
	if _, err := s.q.Requeue(context.WithoutCancel(ctx), job.ID, job.LeaseID, to); err != nil {
		s.log.Warn("returning the job failed; its lease will expire", "job", job.ID, "err", err)
	}
	return fmt.Errorf("%w: sealing a job failed: %v", ErrUnavailable, cause)
}

func (s *Service) fail(ctx context.Context, job *queue.Job, reason string) {
	s.log.Error("job cannot run; failing it", "job", job.ID, "reason", reason)
	if _, err := s.q.Finish(context.WithoutCancel(ctx), job.ID, job.LeaseID, queue.Result{ExitCode: -1, Error: reason}); err == nil {
		s.m.finished.WithLabelValues(string(queue.StateFailed)).Inc()
	}
}

func (s *Service) seal(ctx context.Context, collectorID string, job *queue.Job, src *Source) (*api.Lease, error) {
	pub, err := s.dir.CollectorHPKEKey(ctx, collectorID)
	if err != nil {
		return nil, err
	}
	limits := src.Limits
	if job.Mode == queue.ModeValidate {
		// A validation connects and checks: it has at most
		// ValidationTimeout, at most what a collection has.
		limits.TimeoutSec = int64(ValidationTimeout / time.Second)
		if src.Limits.TimeoutSec > 0 {
			limits.TimeoutSec = min(limits.TimeoutSec, src.Limits.TimeoutSec)
		}
	}
	env, err := crypto.SealEnvelope(&crypto.Job{
		JobID: job.ID, IntegrationID: job.IntegrationID, Image: src.Image, Config: src.Config,
		SecretFields: src.SecretFields, Network: src.Network, Limits: limits,
		NotAfter: s.now().Add(s.cfg.EnvelopeTTL), Mode: string(job.Mode),
	}, collectorID, pub, s.envelopeKey())
	if err != nil {
		return nil, err
	}
	ttl := int(job.LeaseExpiresAt.Sub(s.now()).Round(time.Second) / time.Second)
	return &api.Lease{JobID: job.ID, LeaseID: job.LeaseID, LeaseExpiresAt: job.LeaseExpiresAt, LeaseTTLSec: max(ttl, 1), Attempt: job.Attempt, Envelope: env}, nil
}

// ownJob returns the job if it is the collector's and the lease is current.
func (s *Service) ownJob(ctx context.Context, collectorID, jobID, leaseID string) (*queue.Job, error) {
	job, err := s.q.Get(ctx, jobID)
	if errors.Is(err, queue.ErrNotFound) || (err == nil && job.CollectorID != collectorID) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, jobID)
	}
	if err != nil {
		return nil, err
	}
	if leaseID == "" || job.LeaseID != leaseID || (job.State != queue.StateLeased && job.State != queue.StateRunning) || !s.now().Before(job.LeaseExpiresAt) {
		return nil, fmt.Errorf("%w: job %s is %s under another or no lease", ErrLeaseLost, jobID, job.State)
	}
	return job, nil
}

// mapQueue turns the queue's errors into the service's.
func mapQueue(err error) error {
	switch {
	case errors.Is(err, queue.ErrLeaseLost), errors.Is(err, queue.ErrInvalidState):
		return fmt.Errorf("%w: %v", ErrLeaseLost, err)
	case errors.Is(err, queue.ErrNotFound):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

// Renew extends the collector's lease.
func (s *Service) Renew(ctx context.Context, collectorID, jobID, leaseID string) (*api.RenewResponse, error) {
	if _, err := s.ownJob(ctx, collectorID, jobID, leaseID); err != nil {
		return nil, err
	}
	job, err := s.q.Renew(ctx, jobID, leaseID)
	if err != nil {
		return nil, mapQueue(err)
	}
	return &api.RenewResponse{LeaseExpiresAt: job.LeaseExpiresAt}, nil
}

// MarkRunning records that the job's container started.
func (s *Service) MarkRunning(ctx context.Context, collectorID, jobID, leaseID string) error {
	if _, err := s.ownJob(ctx, collectorID, jobID, leaseID); err != nil {
		return err
	}
	_, err := s.q.MarkRunning(ctx, jobID, leaseID)
	return mapQueue(err)
}

// Records ingests one NDJSON batch of the collector's job. The lease is
// checked before the body is read (to refuse early) and again in the
// write's transaction (a cancel or a lease loss while the body was read
// stores nothing).
func (s *Service) Records(ctx context.Context, collectorID, jobID, leaseID string, seq int, body io.Reader) (*api.IngestResult, error) {
	if seq < 1 {
		return nil, fmt.Errorf("%w: batch sequence number %d: want 1 or more", ErrInvalid, seq)
	}
	job, err := s.ownJob(ctx, collectorID, jobID, leaseID)
	if err != nil {
		return nil, err
	}
	if job.Mode == queue.ModeValidate {
		return nil, fmt.Errorf("%w: job %s is a validation: it ingests no record", ErrInvalid, jobID)
	}
	k := BatchKey{IntegrationID: job.IntegrationID, JobID: jobID, LeaseID: leaseID, Seq: seq}
	if c, dup, err := s.recs.Applied(ctx, k); err != nil || dup {
		return &api.IngestResult{Seq: seq, Duplicate: dup, Accepted: c.Accepted, Refused: c.Refused}, err
	}
	release, err := s.uploads.acquire(collectorID)
	if err != nil {
		return nil, err
	}
	defer release()
	b, res, err := ParseBatch(k, body)
	if errors.Is(err, ErrBadBatch) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return nil, err
	}
	dup, err := s.recs.Ingest(ctx, b)
	if err != nil {
		return nil, mapQueue(err)
	}
	if dup { // applied by a concurrent attempt: answer what it counted
		c, _, err := s.recs.Applied(ctx, k)
		return &api.IngestResult{Seq: seq, Duplicate: true, Accepted: c.Accepted, Refused: c.Refused}, err
	}
	s.m.records.WithLabelValues("accepted").Add(float64(res.Accepted))
	s.m.records.WithLabelValues("refused").Add(float64(res.Refused))
	return res, nil
}

// Logs appends the collector's (redacted) log text to the job's logs,
// once per chunk sequence number.
func (s *Service) Logs(ctx context.Context, collectorID, jobID, leaseID string, seq int, body io.Reader) error {
	if seq < 1 {
		return fmt.Errorf("%w: logs chunk sequence number %d: want 1 or more", ErrInvalid, seq)
	}
	if _, err := s.ownJob(ctx, collectorID, jobID, leaseID); err != nil {
		return err
	}
	release, err := s.uploads.acquire(collectorID)
	if err != nil {
		return err
	}
	defer release()
	text, err := io.ReadAll(io.LimitReader(body, api.MaxLogBytes+1))
	if err != nil {
		return err
	}
	if len(text) > api.MaxLogBytes {
		return fmt.Errorf("%w: a logs upload over %d bytes", ErrInvalid, api.MaxLogBytes)
	}
	_, err = s.recs.AppendLogs(ctx, LogKey{JobID: jobID, LeaseID: leaseID, Seq: seq}, text)
	return mapQueue(err)
}

// Finish records the job's outcome. A run succeeded only if it exited 0
// with no error and no refused line: a refused line means the run is not a
// complete sync, and a sweep would delete what that line carried. A
// succeeded run sweeps in the finish's transaction.
func (s *Service) Finish(ctx context.Context, collectorID, jobID string, req api.FinishRequest) error {
	// The collector relays the integration's words: data, bounded and fit
	// for a text column (a NUL failed the finish on PostgreSQL, for ever).
	req.Error = termsafe.Clip(req.Error, MaxJobErrorBytes)
	job, err := s.ownJob(ctx, collectorID, jobID, req.LeaseID)
	if err != nil {
		return err
	}
	if job.Mode == queue.ModeValidate {
		return s.finishValidation(ctx, job, req)
	}
	counts, err := s.recs.Counts(ctx, jobID)
	if err != nil {
		return err
	}
	if counts.LeaseID != "" && counts.LeaseID != req.LeaseID {
		counts = Counts{} // an earlier attempt's: this one stored nothing
	}
	refused := counts.Refused + req.RefusedRecords
	ok := req.ExitCode == 0 && req.Error == "" && refused == 0
	errText := req.Error
	if req.ExitCode == 0 && req.Error == "" && refused > 0 {
		errText = fmt.Sprintf("%d output lines were refused: the run is not a complete sync, so nothing was marked deleted", refused)
	}
	if req.OOMKilled {
		ok = false
		errText = "out of memory: the engine killed the job at its memory limit (exit 137); the integration's next prediction is its limit"
		if req.Error != "" {
			errText += "; " + req.Error
		}
	}
	peakMem, peakCPU := s.capPeaks(ctx, collectorID, job, req)
	done, sw, err := s.recs.Finish(ctx, jobID, req.LeaseID, queue.Result{
		Succeeded: ok, ExitCode: req.ExitCode, Error: errText,
		PeakMemoryBytes: peakMem, PeakCPUPercent: peakCPU, OOMKilled: req.OOMKilled,
	}, RunReport{RunnerRefused: max(req.RefusedRecords, 0)})
	if err != nil {
		return mapQueue(err)
	}
	s.m.finished.WithLabelValues(string(done.State)).Inc()
	if !ok {
		s.log.Info("job failed", "job", jobID, "integration", job.IntegrationID, "exit", req.ExitCode, "error", errText)
		return nil
	}
	// Counted on the read pool after the commit: the finish does not wait
	// on it, and a failure costs only the count.
	dangling, err := s.recs.MarkDangling(context.WithoutCancel(ctx), job.IntegrationID, jobID)
	if err != nil {
		s.log.Warn("counting dangling relationships failed", "job", jobID, "err", err)
	}
	s.log.Info("job succeeded", "job", jobID, "integration", job.IntegrationID, "records", req.Records,
		"deleted_entities", sw.Entities, "deleted_relationships", sw.Relationships, "dangling_relationships", dangling)
	return nil
}

// MaxJobErrorBytes bounds the error a finish reports.
const MaxJobErrorBytes = 8 << 10

// ValidationTimeout bounds a validation's run: the most an image's
// manifest may ask (validation.timeout); the runner narrows it to what the
// manifest of the image it runs asks, a minute by default
// (docs/integration-contract.md, "Modes").
const ValidationTimeout = manifest.MaxValidationTimeout

// finishValidation records a validation's outcome: it succeeded when the
// integration exited 0 and wrote a result that says ok. Nothing is swept:
// a validation ingests nothing, and its success says nothing of the data.
func (s *Service) finishValidation(ctx context.Context, job *queue.Job, req api.FinishRequest) error {
	v := cleanValidation(req.Validation)
	ok := req.ExitCode == 0 && req.Error == "" && v != nil && v.OK
	errText := req.Error
	switch {
	case v != nil && !v.OK:
		errText = "validation failed"
		if v.Reason != "" {
			errText += " (" + v.Reason + ")"
		}
		if v.Error != "" {
			errText += ": " + v.Error
		}
	case v == nil && errText == "":
		errText = fmt.Sprintf("the integration wrote no validation result (exit %d)", req.ExitCode)
	case v != nil && v.OK && !ok && errText == "":
		errText = fmt.Sprintf("the validation said ok but the integration exited %d", req.ExitCode)
	}
	var outcome string
	if v != nil {
		b, _ := json.Marshal(v)
		outcome = string(b)
	}
	done, err := s.q.Finish(ctx, job.ID, req.LeaseID, queue.Result{Succeeded: ok, ExitCode: req.ExitCode, Error: errText, Outcome: outcome})
	if err != nil {
		return mapQueue(err)
	}
	s.m.finished.WithLabelValues(string(done.State)).Inc()
	s.log.Info("validation finished", "job", job.ID, "integration", job.IntegrationID, "ok", ok, "error", errText)
	return nil
}

// cleanValidation bounds what a collector reports of a validation: the
// collector relays the integration's words, which are data.
func cleanValidation(v *api.Validation) *api.Validation {
	if v == nil {
		return nil
	}
	out := &api.Validation{OK: v.OK, Reason: termsafe.Clip(v.Reason, 64), Error: termsafe.Clip(v.Error, 4096)}
	for _, c := range v.Checks[:min(len(v.Checks), 32)] {
		out.Checks = append(out.Checks, api.ValidationCheck{Name: termsafe.Clip(c.Name, 64), Detail: termsafe.Clip(c.Detail, 512)})
	}
	return out
}

// capPeaks bounds what a collector reports: a job's peak memory cannot be
// above its memory limit nor the collector's memory, and its CPU not above
// all of the collector's CPUs. A false peak would otherwise make an
// integration fit nowhere.
func (s *Service) capPeaks(ctx context.Context, collectorID string, job *queue.Job, req api.FinishRequest) (int64, float64) {
	limit := s.cfg.MaxPeakMemoryBytes
	if src, err := s.dir.Source(ctx, job.IntegrationID); err == nil && src.Limits.MemoryBytes > 0 {
		limit = min(limit, src.Limits.MemoryBytes)
	}
	if me, err := s.dir.Collector(ctx, collectorID); err == nil && me.MemoryBytes > 0 {
		limit = min(limit, me.MemoryBytes)
	}
	mem := min(max(req.PeakMemoryBytes, 0), limit)
	cpu := min(max(req.PeakCPUPercent, 0), 100*float64(maxCPUs))
	return mem, cpu
}

// maxCPUs bounds a believable CPU peak (in cores).
const maxCPUs = 1024

// RunScheduler enqueues each integration's job every period, jittered,
// through the same dedupe as "run now", until ctx ends. It also returns
// expired leases to the queue.
func (s *Service) RunScheduler(ctx context.Context) {
	sc := s.newScheduler()
	// A real-time ticker: it sets how often the scheduler looks, while
	// what is due is decided on s.now (tests call tick and move the clock).
	t := time.NewTicker(s.cfg.SchedulerTick)
	defer t.Stop()
	for {
		sc.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scheduler is RunScheduler's state: when each integration is next due.
type scheduler struct {
	s   *Service
	due map[string]time.Time
}

func (s *Service) newScheduler() *scheduler {
	return &scheduler{s: s, due: map[string]time.Time{}}
}

// tick is one look of the scheduler: it enqueues the jobs that are due by
// the service's clock and returns expired leases to the queue.
func (sc *scheduler) tick(ctx context.Context) {
	sc.s.schedule(ctx, sc.due)
	sc.s.sweepLeases(ctx)
}

// sweepLeases returns expired leases to the queue and counts them, with
// the expiries this replica's Next calls made on the way (the queue counts
// those until the next ExpireLeases).
func (s *Service) sweepLeases(ctx context.Context) {
	if n, err := s.q.ExpireLeases(ctx); err == nil && n > 0 {
		s.m.expired.Add(float64(n))
		s.log.Info("leases expired", "count", n)
	}
}

// RunLeaseSweeper sweeps leases on the scheduler's ticker until ctx ends.
// The scheduler sweeps on the one replica that leads; every other replica
// of a shared database runs this, or the expiries its own Next calls make
// would never be counted (a sweep is safe on several replicas at once).
func (s *Service) RunLeaseSweeper(ctx context.Context) {
	t := time.NewTicker(s.cfg.SchedulerTick)
	defer t.Stop()
	for {
		s.sweepLeases(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) schedule(ctx context.Context, due map[string]time.Time) {
	list, err := s.dir.Schedules(ctx)
	if err != nil {
		s.log.Warn("scheduler: listing integrations failed", "err", err)
		return
	}
	now := s.now()
	seen := map[string]bool{}
	for _, sc := range list {
		seen[sc.IntegrationID] = true
		if sc.Interval <= 0 || (sc.CollectorID == "" && sc.Pool == "") {
			continue
		}
		next, ok := due[sc.IntegrationID]
		if !ok {
			// First sight (or a restart): spread the first runs over a period.
			due[sc.IntegrationID] = now.Add(time.Duration(rand.Float64() * float64(sc.Interval)))
			continue
		}
		if now.Before(next) {
			continue
		}
		jitter := time.Duration((rand.Float64()*2 - 1) * s.cfg.Jitter * float64(sc.Interval))
		due[sc.IntegrationID] = now.Add(sc.Interval + jitter)
		if _, existed, err := s.q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: sc.IntegrationID, CollectorID: sc.CollectorID, Pool: sc.Pool, RequestedBy: queue.RequestedByScheduler}); err != nil {
			s.log.Warn("scheduler: enqueue failed", "integration", sc.IntegrationID, "err", err)
		} else if !existed {
			s.log.Info("scheduled job enqueued", "integration", sc.IntegrationID)
		}
	}
	for id := range due {
		if !seen[id] {
			delete(due, id)
		}
	}
	s.dueMu.Lock()
	s.due = maps.Clone(due)
	s.dueMu.Unlock()
}

// NextRun is when the scheduler will next enqueue the integration's job
// (zero when it has no schedule, or the scheduler has not looked yet).
func (s *Service) NextRun(integrationID string) time.Time {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	return s.due[integrationID]
}

// View renders a queue job for the admin API.
func (s *Service) View(ctx context.Context, j *queue.Job) api.Job {
	v := api.Job{
		ID: j.ID, IntegrationID: j.IntegrationID, CollectorID: j.CollectorID, Pool: j.Pool, State: string(j.State),
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, RequestedBy: j.RequestedBy, CreatedAt: j.CreatedAt,
		Error: j.Error, PeakMemoryBytes: j.PeakMemoryBytes, PeakCPUPercent: j.PeakCPUPercent,
	}
	if !j.StartedAt.IsZero() {
		v.StartedAt = &j.StartedAt
	}
	if !j.FinishedAt.IsZero() {
		v.FinishedAt = &j.FinishedAt
		code := j.ExitCode
		v.ExitCode = &code
	}
	if j.Mode == queue.ModeValidate {
		v.Mode = api.JobModeValidate
		if j.Outcome != "" {
			var res api.Validation
			if json.Unmarshal([]byte(j.Outcome), &res) == nil {
				v.Validation = &res
			}
		}
		return v
	}
	if c, err := s.recs.Counts(ctx, j.ID); err == nil {
		v.Records, v.RefusedRecords, v.DanglingRelationships = c.Records, c.Refused, c.Dangling
	}
	return v
}

// metrics are the pipeline's Prometheus metrics.
type metrics struct {
	finished *prometheus.CounterVec
	records  *prometheus.CounterVec
	expired  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, q queue.Queue) *metrics {
	m := &metrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_jobs_finished_total", Help: "Jobs finished, by outcome."}, []string{"state"}),
		records:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_records_ingested_total", Help: "Records ingested, by result (accepted, refused)."}, []string{"result"}),
		expired:  prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_job_lease_expiries_total", Help: "Job leases that expired."}),
	}
	if reg != nil {
		reg.MustRegister(m.finished, m.records, m.expired, &depthCollector{q: q})
	}
	return m
}

// depthCollector reports the queue depth by state at scrape time.
type depthCollector struct{ q queue.Queue }

var depthDesc = prometheus.NewDesc("collector_queue_jobs", "Jobs in the queue, by state.", []string{"state"}, nil)

func (d *depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depthDesc }

func (d *depthCollector) Collect(ch chan<- prometheus.Metric) {
	// A real-time bound on a scrape, not a time the service decides on.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	depth, err := d.q.Depth(ctx)
	if err != nil {
		return
	}
	for st, n := range depth {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n), string(st))
	}
}

// uploadLimiter bounds the uploads in flight per collector and in all, so
// that what one collector sends cannot make the platform hold more than a
// few batches of it.
type uploadLimiter struct {
	mu          sync.Mutex
	per, total  int
	byCollector map[string]int
	inFlight    int
}

func newUploadLimiter(per, total int) *uploadLimiter {
	return &uploadLimiter{per: max(per, 1), total: max(total, 1), byCollector: map[string]int{}}
}

// acquire takes a slot for collectorID or fails with ErrBusy at once (the
// runner retries with backoff; waiting here would hold a connection).
func (l *uploadLimiter) acquire(collectorID string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byCollector[collectorID] >= l.per || l.inFlight >= l.total {
		return nil, fmt.Errorf("%w: at most %d per collector and %d in all; retry", ErrBusy, l.per, l.total)
	}
	l.byCollector[collectorID]++
	l.inFlight++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.byCollector[collectorID]--; l.byCollector[collectorID] == 0 {
			delete(l.byCollector, collectorID)
		}
		l.inFlight--
	}, nil
}
