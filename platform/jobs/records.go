package jobs

import (
	"context"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/queue"
)

// Records is where the platform keeps what jobs send: entities and
// relationships upserted by (integration, _key), job logs and counters.
// A backend keeps it in the same database as the job queue, because the
// writes that depend on a job's lease check that lease in the same
// transaction, and a successful finish sweeps in the finish's transaction.
// Backends: platform/store/sqlite (Records); the shared suite is
// platform/jobs/recordstest.
type Records interface {
	// Applied reports whether the batch k was applied before (a cheap look
	// before reading a retried body) and, if so, what it accepted and
	// refused then: a retry whose first answer was lost learns the same.
	Applied(ctx context.Context, k BatchKey) (BatchCounts, bool, error)
	// Ingest upserts a validated batch in one transaction that first
	// checks that k.LeaseID is the job's live lease (else an error wrapping
	// queue.ErrLeaseLost, and nothing is written) and that k was not
	// applied before (then dup is true and nothing changes).
	Ingest(ctx context.Context, b *Batch) (dup bool, err error)
	// AppendLogs adds one chunk of log text after the same lease check,
	// once per key, up to MaxJobLogBytes per job (the rest is counted as
	// dropped).
	AppendLogs(ctx context.Context, k LogKey, text []byte) (dup bool, err error)
	// Logs returns a job's logs, with a note when some were dropped.
	Logs(ctx context.Context, jobID string) (string, error)
	// LogsAfter returns the log text appended after cursor (0: from the
	// start) and the cursor to ask with next time: how a reader follows a
	// running job's logs without reading them again.
	LogsAfter(ctx context.Context, jobID string, cursor int64) (string, int64, error)
	// Counts returns a job's counters (zero for a job that sent nothing).
	Counts(ctx context.Context, jobID string) (Counts, error)
	// Finish records the job's outcome in the queue, the runner's refusal
	// count, and, for a success, marks deleted what the integration had and
	// this run did not send: one transaction, so a run is never recorded
	// succeeded without its sweep. It returns the finished job.
	Finish(ctx context.Context, jobID, leaseID string, res queue.Result, rep RunReport) (*queue.Job, Sweep, error)
	// MarkDangling counts the integration's live relationships whose
	// _fromEntityKey or _toEntityKey is not one of its live entities, and
	// records the count on the job.
	MarkDangling(ctx context.Context, integrationID, jobID string) (int64, error)
	// List returns one page of an integration's entities (kind
	// api.KindEntity) or relationships, ordered by key, bounded by
	// f.Limit items and MaxPageBytes of properties.
	List(ctx context.Context, kind string, f ListFilter) (Page, error)
	// Item returns one entity or relationship (deleted ones too), or
	// ErrNotFound.
	Item(ctx context.Context, kind, integrationID, key string) (api.Item, error)
	// Purge deletes up to limit rows of the data, jobs and job logs of the
	// integrations whose deletion asked for it; done reports that no purge
	// is left pending.
	Purge(ctx context.Context, limit int) (done bool, err error)
	// PruneJobs deletes up to limit jobs that finished before cutoff, with
	// their logs and counters, and reports how many.
	PruneJobs(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// BatchKey names one records upload: a retried batch has the same key.
type BatchKey struct {
	IntegrationID, JobID, LeaseID string
	Seq                           int
}

// LogKey names one logs chunk: a retried chunk has the same key.
type LogKey struct {
	JobID, LeaseID string
	Seq            int
}

// Batch is a records upload, parsed and validated.
type Batch struct {
	Key     BatchKey
	Records []*integration.Record
	// Refused counts the lines the platform refused (the runner refuses
	// invalid lines before sending, so this is normally zero).
	Refused int
}

// RunReport is what the runner reports at finish besides the queue's
// result.
type RunReport struct {
	// RunnerRefused counts the output lines the runner refused (and never
	// sent).
	RunnerRefused int64
}

// Counts are a job's counters.
type Counts struct {
	// Records accepted.
	Records int64
	// Refused lines: by the platform and, once finished, by the runner.
	Refused int64
	// Dangling relationships after a successful run.
	Dangling int64
	// LeaseID is the attempt Records and Refused are of: the last that
	// stored a batch ("" when none did, or from before it was kept).
	LeaseID string
}

// Sweep says what a successful finish marked deleted.
type Sweep struct {
	Entities, Relationships int64
}

// ListFilter selects stored items.
type ListFilter struct {
	IntegrationID  string
	Type           string
	IncludeDeleted bool
	// KeyPrefix keeps the items whose key starts with it.
	KeyPrefix string
	// From and To keep the relationships from, or to, that entity key.
	From, To string
	// After is the key to start after ("" = from the start): the page
	// cursor.
	After string
	// Limit caps the items of a page (1..MaxPageItems).
	Limit int
}

// BatchCounts are what an applied batch accepted and refused.
type BatchCounts struct{ Accepted, Refused int }

// Page is one page of items; Next is the cursor of the next page ("" when
// this is the last).
type Page struct {
	Items []api.Item
	Next  string
}

// Page bounds: a listing never holds more than this in memory, whatever
// the data (an unbounded entity listing once reached 1.6 GB).
const (
	MaxPageItems = 10000
	MaxPageBytes = 8 << 20
)

// MaxJobLogBytes caps the logs kept per job; later lines are dropped and counted.
const MaxJobLogBytes = 4 << 20
