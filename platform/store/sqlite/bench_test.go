package sqlite_test

import (
	"path/filepath"
	"testing"

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
