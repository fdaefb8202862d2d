package postgres

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/queue"
)

// The hot-path statements, for the query-plan test.
var (
	LeaseNextSQL   = leaseNextSQL
	LeaseOwnSQL    = leaseOwnSQL
	MayHaveWorkSQL = mayHaveWorkSQL
	ExpireSQL      = expireSQL
	InsertJobSQL   = insertJobSQL
	FinishSQL      = finishSQL
	RenewSQL       = renewSQL
	MarkRunningSQL = markRunningSQL
	RequeueSQL     = requeueSQL
	CancelSQL      = cancelSQL
	UsageSQL       = usageSQL
	ListSQL        = listSQL

	DeleteFinishedSQL        = deleteFinishedSQL
	DeleteIntegrationJobsSQL = deleteIntegrationJobsSQL

	// What a reassignment and a collector's deletion run.
	ReassignSQL                = reassignSQL
	CancelCollectorSQL         = cancelCollectorSQL
	LeaveCollectorSQL          = leaveCollectorSQL
	CancelCollectorInFlightSQL = cancelCollectorInFlightSQL
)

// Stmt is a statement with named arguments rewritten (see positional).
type Stmt = stmt

// Positional is positional, for its test.
var Positional = positional

// SQL is s with positional arguments.
func (s stmt) SQL() string { return s.sql }

// Names are s's arguments, in order.
func (s stmt) Names() []string { return s.names }

// Args are a's values in s's order.
func (s stmt) Args(a pgx.NamedArgs) []any { return s.args(a) }

// HoldNotify makes the next Enqueue leave its NOTIFY to the debouncer, as
// if one had just told the other processes.
func (q *Queue) HoldNotify() {
	q.debounce.mu.Lock()
	q.debounce.hold++
	q.debounce.mu.Unlock()
}

// NextArgs are the arguments of LeaseNextSQL and MayHaveWorkSQL for a
// collector of a pool, with capacity known.
func NextArgs() pgx.NamedArgs {
	q := &Queue{cfg: queue.DefaultConfig()}
	a := q.nextArgs(queue.NextRequest{CollectorID: "c", Pool: "dc1", FreeMemoryBytes: 1 << 30,
		Capacity: queue.Capacity{MemoryBytes: 8 << 30, CPUs: 4, MaxJobs: 4}}, time.Now())
	a["young"], a["lease_id"], a["expires"] = true, "l", time.Now()
	return a
}
