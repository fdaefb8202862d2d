package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/platform/jobs/recordstest"
	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/platform/store/storetest"
	"github.com/collectorhq/collector/queue"
)

// BenchmarkRecordHeartbeat: storetest.BenchRecordHeartbeat on SQLite.
func BenchmarkRecordHeartbeat(b *testing.B) {
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "p.db"), sqlite.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchRecordHeartbeat(b, s)
}

// BenchmarkIngestDirectory: recordstest.BenchDirectory on SQLite, 100,000
// users (400,000 records), BenchmarkLDAPUsers' directory.
func BenchmarkIngestDirectory(b *testing.B) {
	recordstest.BenchDirectory(b, func(b *testing.B) recordstest.Backend {
		s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "p.db"), sqlite.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return recordstest.Backend{Records: s.Records(), Queue: s.Queue()}
	}, 100_000)
}
