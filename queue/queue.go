package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Queue is the job queue shared by the platform's scheduler, its API handlers
// and its metrics. Implementations are safe for concurrent use.
//
// Lease-carrying calls ([Queue.Renew], [Queue.MarkRunning], [Queue.Finish])
// first compare the lease: a lease ID that is not the job's current lease, or
// one whose TTL has passed, fails with [ErrLeaseLost]; only then is the state
// checked, and a state that does not allow the call fails with
// [ErrInvalidState]. A job that was never leased has the empty lease ID.
type Queue interface {
	// Enqueue adds a queued job for req.IntegrationID on its target's queue:
	// one collector's, or a pool's (any member may lease it). If the
	// integration already has a job of req.Mode queued, leased or running,
	// wherever it is, no job is added: Enqueue returns that job and
	// existed = true.
	Enqueue(ctx context.Context, req EnqueueRequest) (job *Job, existed bool, err error)

	// Next leases the oldest queued job (validations first) of
	// req.CollectorID, or of its pool req.Pool, that fits beside what the collector already runs (see
	// NextRequest: predicted memory and CPU against its capacity, at most
	// MaxJobs at once), waiting up to req.Wait for one. A pool job goes to
	// the least loaded waiting member it fits on (a member that is not
	// the least loaded leaves it for Config.PoolHandoff, then takes it).
	// The job comes back leased to req.CollectorID, with a fresh LeaseID
	// valid for Config.LeaseTTL. When nothing arrives in time Next returns
	// ErrNoJob; when ctx ends first it returns ctx.Err(); after Close,
	// ErrClosed. Next also returns expired leases to the queue (see
	// ExpireLeases).
	Next(ctx context.Context, req NextRequest) (*Job, error)

	// Renew extends the lease of a leased or running job by Config.LeaseTTL
	// from now and returns the job with its new LeaseExpiresAt.
	Renew(ctx context.Context, jobID, leaseID string) (*Job, error)

	// MarkRunning moves a leased job to running, sets StartedAt and renews
	// the lease. Calling it again on the running job with the same lease only
	// renews, so a runner may retry it safely.
	MarkRunning(ctx context.Context, jobID, leaseID string) (*Job, error)

	// Finish records the outcome of a leased or running job: succeeded or
	// failed, with exit code, error and resource peaks. A successful run's
	// PeakMemoryBytes feeds the integration's predicted peak. Finishing an
	// already finished job returns ErrInvalidState; Get shows its outcome.
	Finish(ctx context.Context, jobID, leaseID string, res Result) (*Job, error)

	// Cancel cancels a job that is queued, leased or running. The lease of an
	// in-flight job is voided, so the runner's later calls get ErrLeaseLost
	// (the runner is expected to stop the container when that happens).
	// Canceling a finished job returns ErrInvalidState.
	Cancel(ctx context.Context, jobID string) (*Job, error)

	// Get returns one job, or ErrNotFound.
	Get(ctx context.Context, jobID string) (*Job, error)

	// List returns the jobs matching f, newest first.
	List(ctx context.Context, f Filter) ([]*Job, error)

	// Depth counts the active jobs (queued, leased, running) by state, for
	// metrics; states with no job are absent. Finished jobs are not counted:
	// the history grows without bound and a scrape must stay cheap.
	Depth(ctx context.Context) (map[State]int, error)

	// ExpireLeases returns every job whose lease has passed to the queue with
	// Attempt+1, or marks it dead when it was on its last attempt. The job
	// goes where its integration is: where Reassign moved it while the job
	// was in flight, else a pool job to its pool, else back to its
	// collector's queue. The platform calls it periodically; Next also
	// applies expiry lazily. It
	// reports how many leases expired since the previous call, counting those
	// this queue's Next calls expired, so that the sum of its results is the
	// number of expired leases (a counter metric).
	ExpireLeases(ctx context.Context) (int, error)

	// Reassign moves the queued jobs of an integration to another target's
	// queue (integrations move between collectors and pools) and reports
	// how many moved. Leased and running jobs stay with the collector
	// running them, CollectorID and lease unchanged, so that the run under
	// way may finish; if the lease ends without a finish (it expires, or
	// Requeue), the job goes to to, not back to that collector, which may
	// never ask again.
	Reassign(ctx context.Context, integrationID string, to Target) (int, error)

	// Requeue returns a leased (not yet running) job to the queue of to
	// without counting an attempt, voiding its lease: the platform leased
	// it to a collector that may not run it (its integration moved), or
	// could not hand it over (a transient error). When Reassign moved the
	// integration since the job was leased, the job goes where Reassign
	// sent it instead: that is newer than anything the caller read before
	// it. The job returned says where it went.
	Requeue(ctx context.Context, jobID, leaseID string, to Target) (*Job, error)

	// Usage is what the collector's active (leased and running) jobs are
	// predicted to use: what Next counts against its capacity.
	Usage(ctx context.Context, collectorID string) (Usage, error)

	// Need is what a job of the integration is predicted to use (its
	// recent successful runs, the defaults for one that never ran, the
	// limits as a ceiling).
	Need(ctx context.Context, integrationID string) (Need, error)

	// Close wakes every waiting Next (which returns ErrClosed) and releases
	// what the queue owns. It is safe to call more than once.
	Close() error
}

// State is the state of a job.
type State string

// The job states. Queued, leased and running are "active": an integration has
// at most one active job. The others are final.
const (
	// StateQueued: waiting for a collector to lease it.
	StateQueued State = "queued"
	// StateLeased: handed to a runner, which has not started it yet.
	StateLeased State = "leased"
	// StateRunning: the runner reported the container started.
	StateRunning State = "running"
	// StateSucceeded: the run completed (exit 0, full sync).
	StateSucceeded State = "succeeded"
	// StateFailed: the run ended in error; it is not retried by the queue
	// (the scheduler's next period enqueues a new job).
	StateFailed State = "failed"
	// StateCanceled: canceled by an operator or the platform.
	StateCanceled State = "canceled"
	// StateDead: its lease expired on its last attempt (the runner vanished
	// MaxAttempts times).
	StateDead State = "dead"
)

// States lists every state, in life-cycle order. Do not modify it.
var States = []State{StateQueued, StateLeased, StateRunning, StateSucceeded, StateFailed, StateCanceled, StateDead}

// Active reports whether s is queued, leased or running: the states in which
// a job blocks a new one for the same integration.
func (s State) Active() bool {
	return s == StateQueued || s == StateLeased || s == StateRunning
}

// Final reports whether s is a final state.
func (s State) Final() bool {
	return s.Valid() && !s.Active()
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	switch s {
	case StateQueued, StateLeased, StateRunning, StateSucceeded, StateFailed, StateCanceled, StateDead:
		return true
	}
	return false
}

// Requesters commonly found in Job.RequestedBy.
const (
	// RequestedByScheduler marks a job the scheduler enqueued for a period.
	RequestedByScheduler = "scheduler"
	// RequestedByAdmin marks a "run now" from the console or the admin CLI.
	RequestedByAdmin = "admin"
)

// Job is one run of one integration instance on one collector.
// Time fields are zero when unset.
type Job struct {
	// ID is random: "job_" followed by 32 hex digits.
	ID string
	// IntegrationID is the integration instance the job runs.
	IntegrationID string
	// CollectorID is the collector whose queue holds the job; for a pool
	// job, the member that holds (or last held) its lease, "" while it is
	// queued in the pool.
	CollectorID string
	// Pool is the pool whose members may lease the job ("" for a job of
	// one collector).
	Pool string
	// State is where the job is in its life cycle.
	State State
	// Attempt counts leases that expired plus one: 1 on the first attempt.
	Attempt int
	// MaxAttempts is the attempt on which an expired lease makes the job dead.
	MaxAttempts int
	// LeaseID is the current (or, once finished, the last) lease: random,
	// "lease_" followed by 32 hex digits; empty when queued or voided.
	LeaseID string
	// LeaseExpiresAt is when the current lease expires unless renewed.
	LeaseExpiresAt time.Time
	// CreatedAt is when the job was enqueued.
	CreatedAt time.Time
	// StartedAt is when the current attempt was marked running.
	StartedAt time.Time
	// FinishedAt is when the job reached a final state.
	FinishedAt time.Time
	// ExitCode is the container's exit code, as reported by Finish.
	ExitCode int
	// Error is a human-readable cause for failed, canceled and dead jobs.
	Error string
	// PeakMemoryBytes is the run's measured peak memory, from Finish.
	PeakMemoryBytes int64
	// PeakCPUPercent is the run's measured peak CPU use, from Finish.
	PeakCPUPercent float64
	// RequestedBy says who enqueued the job, e.g. RequestedByScheduler.
	RequestedBy string
	// Mode is what the job does: ModeCollect, or ModeValidate (the
	// integration checks its access and ingests nothing).
	Mode Mode
	// Outcome is a finished validation's result, as the runner reported
	// it (the integration's result line, JSON); empty otherwise.
	Outcome string
}

// Mode is what a job asks of its integration.
type Mode string

// The modes of a job. A validation is leased before any collection queued
// for the same collector or pool, gets one attempt (asked for now, it is
// not worth running later), and never feeds the integration's predicted
// peaks. An integration has at most one active job per mode: a validation
// may run beside its collection.
const (
	ModeCollect  Mode = ""
	ModeValidate Mode = "validate"
)

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool { return m == ModeCollect || m == ModeValidate }

// MaxOutcomeBytes bounds a validation's stored outcome.
const MaxOutcomeBytes = 64 << 10

// Attempts is a job's attempts in mode m, collections having max.
func (m Mode) Attempts(max int) int {
	if m == ModeValidate {
		return 1
	}
	return max
}

// Priority orders the queued jobs of a queue: the highest is leased first.
func (m Mode) Priority() int {
	if m == ModeValidate {
		return 1
	}
	return 0
}

// CheckEnqueue checks what every backend's Enqueue requires.
func CheckEnqueue(req EnqueueRequest) error {
	if req.IntegrationID == "" || !(Target{CollectorID: req.CollectorID, Pool: req.Pool}).Valid() {
		return errors.New("enqueue: an integration ID and one target (a collector ID or a pool) are required")
	}
	if !req.Mode.Valid() {
		return fmt.Errorf("enqueue: unknown job mode %q", req.Mode)
	}
	return nil
}

// ClipOutcome bounds a validation's outcome to MaxOutcomeBytes of valid
// UTF-8. A backend stores it for a validation only.
func ClipOutcome(outcome string) string {
	if len(outcome) > MaxOutcomeBytes {
		outcome = outcome[:MaxOutcomeBytes]
	}
	return strings.ToValidUTF8(outcome, "")
}

// EnqueueRequest asks for a job.
type EnqueueRequest struct {
	// IntegrationID is the integration instance to run. Required.
	IntegrationID string
	// CollectorID is the collector whose queue gets the job; or Pool, the
	// pool whose queue does. Exactly one is required.
	CollectorID string
	Pool        string
	// RequestedBy says who asked, e.g. RequestedByScheduler.
	RequestedBy string
	// Mode is the job's mode (ModeCollect when empty).
	Mode Mode
}

// Target is where an integration's jobs go: one collector, or a pool.
type Target struct {
	CollectorID string
	Pool        string
}

// Valid reports whether exactly one of the two is set.
func (t Target) Valid() bool { return (t.CollectorID == "") != (t.Pool == "") }

// Usage is the predicted use of a collector's active jobs.
type Usage struct {
	Jobs        int
	MemoryBytes int64
	CPUs        float64
}

// Need is the predicted use of one job.
type Need struct {
	MemoryBytes int64
	CPUs        float64
	// Known: predicted from runs (else the defaults).
	Known bool
}

// NextRequest is a collector asking for work.
type NextRequest struct {
	// CollectorID is the asking collector; it gets only its own jobs. Required.
	CollectorID string
	// Wait is how long Next may wait for a job (runners use about 25 s).
	// Zero or negative means: look once and return.
	Wait time.Duration
	// Pool is the asking collector's pool ("" for none): it also gets the
	// pool's jobs.
	Pool string
	// FreeMemoryBytes is the memory the collector measures free for a new
	// job. Next returns only jobs whose predicted peak fits; others stay
	// queued. Zero means unknown: no filter.
	FreeMemoryBytes int64
	// Capacity is what the collector has (from its heartbeats): a job is
	// leased only if its predicted memory and CPU fit beside the predicted
	// use of the collector's active jobs, and while it has fewer than
	// MaxJobs. Zero fields mean unknown: no filter on them.
	Capacity Capacity
}

// Capacity bounds what one collector runs at once.
type Capacity struct {
	MemoryBytes int64
	CPUs        float64
	MaxJobs     int
}

// Result is the outcome of a run, reported by Finish.
type Result struct {
	// Succeeded says the run completed; false makes the job failed.
	Succeeded bool
	// ExitCode is the container's exit code.
	ExitCode int
	// Error explains a failure to a person.
	Error string
	// PeakMemoryBytes is the run's measured peak memory; zero if unknown.
	PeakMemoryBytes int64
	// PeakCPUPercent is the run's measured peak CPU use; zero if unknown.
	PeakCPUPercent float64
	// OOMKilled: the engine killed the container at its memory limit. The
	// integration's next prediction is the limit itself.
	OOMKilled bool
	// Outcome is a validation's result (at most MaxOutcomeBytes).
	Outcome string
}

// Filter selects jobs for List. Zero fields do not filter.
type Filter struct {
	// IntegrationID keeps only jobs of that integration.
	IntegrationID string
	// CollectorID keeps only jobs of that collector.
	CollectorID string
	// States keeps only jobs in one of these states.
	States []State
	// Before keeps only jobs enqueued before the job with this ID (the
	// cursor of the previous page: List is newest first). A job that no
	// longer exists gives an empty list.
	Before string
	// Limit caps the number of jobs returned; zero or negative means no cap.
	Limit int
}

// Sentinel errors. Backends return them wrapped; match with errors.Is.
var (
	// ErrNotFound: no job has that ID.
	ErrNotFound = errors.New("job not found")
	// ErrLeaseLost: the lease given is not the job's current lease: it
	// expired, was voided by Cancel, or the job was leased again since. The
	// runner must stop working on the job.
	ErrLeaseLost = errors.New("job lease lost")
	// ErrInvalidState: the job's state does not allow the operation, e.g.
	// finishing a queued job or canceling a finished one.
	ErrInvalidState = errors.New("invalid job state for this operation")
	// ErrNoJob: Next waited req.Wait and no eligible job came.
	ErrNoJob = errors.New("no job available")
	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("queue closed")
	// ErrStorageFull: a write failed because the storage under the queue
	// (and whatever shares it) is full; it succeeds again once space is
	// freed. Nothing was written.
	ErrStorageFull = errors.New("storage full")
)

// Config tunes a queue. Start from DefaultConfig.
type Config struct {
	// MaxAttempts is how many leases a job gets: when the lease of attempt
	// MaxAttempts expires, the job is dead.
	MaxAttempts int
	// LeaseTTL is how long a lease lasts unless renewed.
	LeaseTTL time.Duration
	// DefaultPeakMemoryBytes is the predicted peak of an integration with no
	// successful run on record.
	DefaultPeakMemoryBytes int64
	// PeakSamples is how many recent successful runs the predicted peak (their
	// maximum) is taken over.
	PeakSamples int
	// DefaultPeakCPUs is the predicted CPU (cores) of an integration with
	// no successful run on record.
	DefaultPeakCPUs float64
	// LimitMemoryBytes and LimitCPUs are a job container's limits: a
	// prediction never exceeds them (the container cannot use more), and
	// an OOM-killed run predicts LimitMemoryBytes. Zero: no ceiling.
	LimitMemoryBytes int64
	LimitCPUs        float64
	// PoolHandoff is how long a pool job waits for the least loaded
	// member it fits on before any member it fits on may take it.
	PoolHandoff time.Duration
	// PollInterval bounds how long a waiting Next goes without looking at the
	// store, to see work another process made eligible (an enqueue or a lease
	// expiry it was not told about). Enqueues in the same process wake it at
	// once.
	PollInterval time.Duration
}

// DefaultConfig returns the recommended configuration: 3 attempts, 60 s
// leases, 256 MiB default peak over the last 5 runs, 1 s fallback poll.
func DefaultConfig() Config {
	return Config{
		MaxAttempts:            3,
		LeaseTTL:               60 * time.Second,
		DefaultPeakMemoryBytes: 256 << 20,
		PeakSamples:            5,
		DefaultPeakCPUs:        0.5,
		PoolHandoff:            2 * time.Second,
		PollInterval:           time.Second,
	}
}

// Validate reports the first bad field as a *ConfigError.
func (c Config) Validate() error {
	switch {
	case c.MaxAttempts < 1:
		return &ConfigError{Field: "MaxAttempts", Reason: fmt.Sprintf("must be at least 1, got %d", c.MaxAttempts)}
	case c.LeaseTTL <= 0:
		return &ConfigError{Field: "LeaseTTL", Reason: fmt.Sprintf("must be positive, got %s", c.LeaseTTL)}
	case c.DefaultPeakMemoryBytes < 0:
		return &ConfigError{Field: "DefaultPeakMemoryBytes", Reason: fmt.Sprintf("must not be negative, got %d", c.DefaultPeakMemoryBytes)}
	case c.PeakSamples < 1:
		return &ConfigError{Field: "PeakSamples", Reason: fmt.Sprintf("must be at least 1, got %d", c.PeakSamples)}
	case c.PollInterval <= 0:
		return &ConfigError{Field: "PollInterval", Reason: fmt.Sprintf("must be positive, got %s", c.PollInterval)}
	case c.DefaultPeakCPUs < 0 || c.LimitCPUs < 0 || c.LimitMemoryBytes < 0:
		return &ConfigError{Field: "DefaultPeakCPUs", Reason: "predictions and limits must not be negative"}
	case c.PoolHandoff < 0:
		return &ConfigError{Field: "PoolHandoff", Reason: fmt.Sprintf("must not be negative, got %s", c.PoolHandoff)}
	}
	return nil
}

// ConfigError names the Config field that failed validation.
type ConfigError struct {
	// Field is the name of the bad Config field.
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("queue config: %s %s", e.Field, e.Reason)
}
