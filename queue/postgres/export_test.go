package postgres

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/queue"
)

// The hot-path statements, for the query-plan test.
var (
	LeaseNextSQL   = leaseNextSQL
	MayHaveWorkSQL = mayHaveWorkSQL
	ExpireSQL      = expireSQL
	InsertJobSQL   = insertJobSQL
	FinishSQL      = finishSQL
	UsageSQL       = usageSQL
	ListSQL        = listSQL
)

// NextArgs are the arguments of LeaseNextSQL and MayHaveWorkSQL for a
// collector of a pool, with capacity known.
func NextArgs() pgx.NamedArgs {
	q := &Queue{cfg: queue.DefaultConfig()}
	a := q.nextArgs(queue.NextRequest{CollectorID: "c", Pool: "dc1", FreeMemoryBytes: 1 << 30,
		Capacity: queue.Capacity{MemoryBytes: 8 << 30, CPUs: 4, MaxJobs: 4}}, time.Now())
	a["young"], a["lease_id"], a["expires"] = true, "l", time.Now()
	return a
}
