package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/queue"
)

// TestWriterPageCache: the writer's page cache holds a batch's dirty
// pages (SQLite's default of 2 MiB spilled them to the WAL in the middle
// of every large batch of records with spread keys, then read them back);
// readers keep the default.
func TestWriterPageCache(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "platform.db"), Options{IntegrityKey: make([]byte, 32), Queue: queue.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var w, r int
	if err := s.w.QueryRow(`PRAGMA cache_size`).Scan(&w); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRow(`PRAGMA cache_size`).Scan(&r); err != nil {
		t.Fatal(err)
	}
	if w != -writerCacheKiB || r != -2000 {
		t.Errorf("cache_size: writer %d, reader %d; want -%d (KiB) and SQLite's default -2000", w, r, writerCacheKiB)
	}
}
