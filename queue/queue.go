package queue

import (
	"context"
	"errors"
	"fmt"
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
	// Enqueue adds a queued job for req.IntegrationID on req.CollectorID's
	// queue. If the integration already has a job queued, leased or running,
	// no job is added: Enqueue returns that job and existed = true.
	Enqueue(ctx context.Context, req EnqueueRequest) (job *Job, existed bool, err error)

	// Next leases the oldest queued job of req.CollectorID whose predicted
	// peak memory fits req.FreeMemoryBytes, waiting up to req.Wait for one to
	// arrive. The job comes back leased, with a fresh LeaseID valid for
	// Config.LeaseTTL. When nothing arrives in time Next returns ErrNoJob;
	// when ctx ends first it returns ctx.Err(); after Close, ErrClosed.
	// Next also returns expired leases to the queue (see ExpireLeases).
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
	// Attempt+1, or marks it dead when it was on its last attempt. The
	// platform calls it periodically; Next also applies expiry lazily. It
	// reports how many leases expired since the previous call, counting those
	// this queue's Next calls expired, so that the sum of its results is the
	// number of expired leases (a counter metric).
	ExpireLeases(ctx context.Context) (int, error)

	// Reassign moves the queued jobs of an integration to another collector's
	// queue (integrations can move between collectors) and reports how many
	// moved. Leased and running jobs stay with the collector running them.
	Reassign(ctx context.Context, integrationID, newCollectorID string) (int, error)

	// Requeue returns a leased (not yet running) job to the queue of
	// collectorID without counting an attempt, voiding its lease: the
	// platform leased it to a collector that may not run it (its
	// integration moved), or could not hand it over (a transient error).
	Requeue(ctx context.Context, jobID, leaseID, collectorID string) (*Job, error)

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
	// CollectorID is the collector whose queue holds the job.
	CollectorID string
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
}

// EnqueueRequest asks for a job.
type EnqueueRequest struct {
	// IntegrationID is the integration instance to run. Required.
	IntegrationID string
	// CollectorID is the collector whose queue gets the job. Required.
	CollectorID string
	// RequestedBy says who asked, e.g. RequestedByScheduler.
	RequestedBy string
}

// NextRequest is a collector asking for work.
type NextRequest struct {
	// CollectorID is the asking collector; it gets only its own jobs. Required.
	CollectorID string
	// Wait is how long Next may wait for a job (runners use about 25 s).
	// Zero or negative means: look once and return.
	Wait time.Duration
	// FreeMemoryBytes is the memory the collector has free for a new job.
	// Next returns only jobs whose predicted peak fits; others stay queued.
	// Zero means unknown: no filter.
	FreeMemoryBytes int64
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
