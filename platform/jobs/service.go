package jobs

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
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
)

// Source is an integration as a job needs it, config decrypted.
type Source struct {
	IntegrationID string
	CollectorID   string
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
	Interval      time.Duration
}

// Directory is what the service reads from the platform's store.
type Directory interface {
	// Source returns the integration with its config decrypted.
	Source(ctx context.Context, integrationID string) (*Source, error)
	// CollectorHPKEKey returns the collector's HPKE public key from enrollment.
	CollectorHPKEKey(ctx context.Context, collectorID string) ([]byte, error)
	// Schedules lists the integrations with a collector and a period.
	Schedules(ctx context.Context) ([]Schedule, error)
}

// Config tunes the service.
type Config struct {
	// EnvelopeTTL is how long a sealed job may wait to be opened.
	EnvelopeTTL time.Duration
	// SchedulerTick is how often the scheduler looks for due integrations.
	SchedulerTick time.Duration
	// Jitter spreads scheduled enqueues over this fraction of the period.
	Jitter float64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{EnvelopeTTL: 10 * time.Minute, SchedulerTick: time.Second, Jitter: 0.1}
}

// Service runs the job pipeline on the platform.
type Service struct {
	cfg  Config
	q    queue.Queue
	data *Data
	dir  Directory
	key  ed25519.PrivateKey
	log  *slog.Logger
	m    *metrics
	now  func() time.Time
}

// New returns the service.
func New(cfg Config, q queue.Queue, data *Data, dir Directory, signingKey ed25519.PrivateKey, log *slog.Logger, reg prometheus.Registerer) *Service {
	return &Service{cfg: cfg, q: q, data: data, dir: dir, key: signingKey, log: log, m: newMetrics(reg, q), now: time.Now}
}

// Data returns the data store.
func (s *Service) Data() *Data { return s.data }

// Queue returns the queue.
func (s *Service) Queue() queue.Queue { return s.q }

// RunNow enqueues a job for an integration at once (deduplicated: an
// integration with a job queued or in flight gets that job back).
func (s *Service) RunNow(ctx context.Context, integrationID, requestedBy string) (*queue.Job, bool, error) {
	src, err := s.dir.Source(ctx, integrationID)
	if err != nil {
		return nil, false, err
	}
	if src.CollectorID == "" {
		return nil, false, fmt.Errorf("%w: integration %s is not assigned to a collector", ErrInvalid, integrationID)
	}
	return s.q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: integrationID, CollectorID: src.CollectorID, RequestedBy: requestedBy})
}

// Next long-polls the collector's queue and seals the leased job to it.
// A job that cannot be sealed (its integration is gone) fails and the poll
// goes on.
func (s *Service) Next(ctx context.Context, collectorID string, req api.NextRequest) (*api.Lease, error) {
	// Capped before the multiplication, which a huge wait_seconds would overflow.
	wait := time.Duration(min(req.WaitSeconds, int(api.MaxLongPoll/time.Second))) * time.Second
	deadline := s.now().Add(wait)
	for {
		job, err := s.q.Next(ctx, queue.NextRequest{CollectorID: collectorID, Wait: max(0, deadline.Sub(s.now())), FreeMemoryBytes: req.FreeMemoryBytes})
		if errors.Is(err, queue.ErrNoJob) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		lease, err := s.seal(ctx, collectorID, job)
		if err == nil {
			return lease, nil
		}
		s.log.Warn("job cannot be sealed; failing it", "job", job.ID, "err", err)
		s.q.Finish(ctx, job.ID, job.LeaseID, queue.Result{ExitCode: -1, Error: "platform could not seal the job: " + err.Error()})
		s.m.finished.WithLabelValues(string(queue.StateFailed)).Inc()
	}
}

func (s *Service) seal(ctx context.Context, collectorID string, job *queue.Job) (*api.Lease, error) {
	src, err := s.dir.Source(ctx, job.IntegrationID)
	if err != nil {
		return nil, err
	}
	pub, err := s.dir.CollectorHPKEKey(ctx, collectorID)
	if err != nil {
		return nil, err
	}
	env, err := crypto.SealEnvelope(&crypto.Job{
		JobID: job.ID, IntegrationID: job.IntegrationID, Image: src.Image, Config: src.Config,
		SecretFields: src.SecretFields, Network: src.Network, Limits: src.Limits,
		NotAfter: s.now().Add(s.cfg.EnvelopeTTL),
	}, collectorID, pub, s.key)
	if err != nil {
		return nil, err
	}
	ttl := int(time.Until(job.LeaseExpiresAt).Round(time.Second) / time.Second)
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

// Records ingests one NDJSON batch of the collector's job.
func (s *Service) Records(ctx context.Context, collectorID, jobID, leaseID string, seq int, body io.Reader) (*api.IngestResult, error) {
	if seq < 1 {
		return nil, fmt.Errorf("%w: batch sequence number %d: want 1 or more", ErrInvalid, seq)
	}
	job, err := s.ownJob(ctx, collectorID, jobID, leaseID)
	if err != nil {
		return nil, err
	}
	res, err := s.data.Ingest(ctx, BatchKey{IntegrationID: job.IntegrationID, JobID: jobID, LeaseID: leaseID, Seq: seq}, body)
	if errors.Is(err, ErrBadBatch) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return nil, err
	}
	if !res.Duplicate {
		s.m.records.WithLabelValues("accepted").Add(float64(res.Accepted))
		s.m.records.WithLabelValues("refused").Add(float64(res.Refused))
	}
	return res, nil
}

// Logs appends the collector's (redacted) log text to the job's logs.
func (s *Service) Logs(ctx context.Context, collectorID, jobID, leaseID string, body io.Reader) error {
	if _, err := s.ownJob(ctx, collectorID, jobID, leaseID); err != nil {
		return err
	}
	text, err := io.ReadAll(io.LimitReader(body, api.MaxLogBytes+1))
	if err != nil {
		return err
	}
	if len(text) > api.MaxLogBytes {
		return fmt.Errorf("%w: a logs upload over %d bytes", ErrInvalid, api.MaxLogBytes)
	}
	return s.data.AppendLogs(ctx, jobID, text)
}

// Finish records the job's outcome; a succeeded run sweeps what it did not send.
func (s *Service) Finish(ctx context.Context, collectorID, jobID string, req api.FinishRequest) error {
	job, err := s.ownJob(ctx, collectorID, jobID, req.LeaseID)
	if err != nil {
		return err
	}
	ok := req.ExitCode == 0 && req.Error == ""
	done, err := s.q.Finish(ctx, jobID, req.LeaseID, queue.Result{
		Succeeded: ok, ExitCode: req.ExitCode, Error: req.Error,
		PeakMemoryBytes: req.PeakMemoryBytes, PeakCPUPercent: req.PeakCPUPercent,
	})
	if err != nil {
		return mapQueue(err)
	}
	s.m.finished.WithLabelValues(string(done.State)).Inc()
	if ok {
		// The sweep must not die with the request: the job is already finished.
		ents, rels, err := s.data.Sweep(context.WithoutCancel(ctx), job.IntegrationID, jobID)
		if err != nil {
			return fmt.Errorf("sweep after job %s: %w", jobID, err)
		}
		s.log.Info("job succeeded", "job", jobID, "integration", job.IntegrationID, "records", req.Records, "deleted_entities", ents, "deleted_relationships", rels)
	} else {
		s.log.Info("job failed", "job", jobID, "integration", job.IntegrationID, "exit", req.ExitCode, "error", req.Error)
	}
	return nil
}

// RunScheduler enqueues each integration's job every period, jittered,
// through the same dedupe as "run now", until ctx ends. It also returns
// expired leases to the queue.
func (s *Service) RunScheduler(ctx context.Context) {
	due := map[string]time.Time{}
	t := time.NewTicker(s.cfg.SchedulerTick)
	defer t.Stop()
	for {
		s.schedule(ctx, due)
		if n, err := s.q.ExpireLeases(ctx); err == nil && n > 0 {
			s.m.expired.Add(float64(n))
			s.log.Info("leases expired", "count", n)
		}
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
		if sc.Interval <= 0 || sc.CollectorID == "" {
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
		if _, existed, err := s.q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: sc.IntegrationID, CollectorID: sc.CollectorID, RequestedBy: queue.RequestedByScheduler}); err != nil {
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
}

// View renders a queue job for the admin API.
func (s *Service) View(ctx context.Context, j *queue.Job) api.Job {
	v := api.Job{
		ID: j.ID, IntegrationID: j.IntegrationID, CollectorID: j.CollectorID, State: string(j.State),
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
	v.Records, v.RefusedRecords, _ = s.data.JobCounts(ctx, j.ID)
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
