package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/queue"
	queuesqlite "github.com/collectorhq/collector/queue/sqlite"
)

// TestQueueSharesTheFile: the job queue runs on the store's writer handle
// (one connection), and a long-polling Next does not hold that connection
// while it waits, so platform writes go on meanwhile.
func TestQueueSharesTheFile(t *testing.T) {
	parked := make(chan string, 1)
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), sqlite.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig(),
		QueueOptions: []queuesqlite.Option{queuesqlite.WithParkHook(func(c string) {
			select {
			case parked <- c:
			default:
			}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := s.Queue()
	got := make(chan error, 1)
	go func() {
		_, err := q.Next(ctx, queue.NextRequest{CollectorID: "c1", Wait: 5 * time.Second})
		got <- err
	}()
	<-parked // Next is waiting
	start := time.Now()
	collector(t, s, "c1")
	if d := time.Since(start); d > time.Second {
		t.Errorf("a store write waited %v behind a long-polling Next", d)
	}
	if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "i1", CollectorID: "c1", RequestedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("Next: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Next did not wake up")
	}
	es, _ := s.AuditEntries(ctx, 0, 10)
	if len(es) != 1 {
		t.Errorf("audit entries = %d", len(es))
	}
}
