package postgres

import (
	"context"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/queue"
)

// Methods not ported yet: each is removed here as its port lands.

func (*Records) AppendLogs(_ context.Context, _ jobs.LogKey, _ []uint8) (bool, error) {
	panic("not ported yet")
}

func (*Records) Applied(_ context.Context, _ jobs.BatchKey) (jobs.BatchCounts, bool, error) {
	panic("not ported yet")
}

func (*Records) Counts(_ context.Context, _ string) (jobs.Counts, error) { panic("not ported yet") }

func (*Records) Finish(_ context.Context, _ string, _ string, _ queue.Result, _ jobs.RunReport) (*queue.Job, jobs.Sweep, error) {
	panic("not ported yet")
}

func (*Records) Ingest(_ context.Context, _ *jobs.Batch) (bool, error) { panic("not ported yet") }

func (*Records) Item(_ context.Context, _ string, _ string, _ string) (api.Item, error) {
	panic("not ported yet")
}

func (*Records) List(_ context.Context, _ string, _ jobs.ListFilter) (jobs.Page, error) {
	panic("not ported yet")
}

func (*Records) Logs(_ context.Context, _ string) (string, error) { panic("not ported yet") }

func (*Records) LogsAfter(_ context.Context, _ string, _ int64) (string, int64, error) {
	panic("not ported yet")
}

func (*Records) MarkDangling(_ context.Context, _ string, _ string) (int64, error) {
	panic("not ported yet")
}

func (*Records) PruneJobs(_ context.Context, _ time.Time, _ int) (int, error) {
	panic("not ported yet")
}

func (*Records) Purge(_ context.Context, _ int) (bool, error) { panic("not ported yet") }
