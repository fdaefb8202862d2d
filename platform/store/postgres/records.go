package postgres

import "github.com/collectorhq/collector/platform/jobs"

// Records is the PostgreSQL record store (jobs.Records), in the store's
// database: its lease checks and the finish's sweep run in the queue's
// transactions.
type Records struct {
	s *Store
}

var _ jobs.Records = (*Records)(nil)
