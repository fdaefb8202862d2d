package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/queue"
)

// BenchmarkRecordHeartbeat stores heartbeats of 64 collectors, one after
// another (the store has one writer).
func BenchmarkRecordHeartbeat(b *testing.B) {
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "p.db"), sqlite.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const collectors = 64
	for i := range collectors {
		id := fmt.Sprintf("c%d", i)
		if err := s.CreateCollector(ctx, store.Collector{ID: id, Name: id, CreatedAt: time.Now()},
			store.EnrollmentToken{Hash: "h-" + id, CollectorID: id, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)},
			store.Event{Time: time.Now(), Actor: "admin", Action: "collector.created", Target: id}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("c%d", i%collectors)
		if err := s.RecordHeartbeat(ctx, id, store.Heartbeat{At: time.Now(), RunnerState: "running", MemTotal: 1 << 30, MemFree: 1 << 29}, 100); err != nil {
			b.Fatal(err)
		}
	}
}
