package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/sqlite"
)

// TestStorageFull: on a full disk a write fails with queue.ErrStorageFull
// and writes nothing; reads go on; once space is freed, writes succeed
// and the database is intact.
func TestStorageFull(t *testing.T) {
	dir := testutil.SmallDisk(t, 4<<20)
	path := filepath.Join(dir, "queue.db")
	q, err := sqlite.Open(path, queue.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	first, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-0", CollectorID: "col-a"})
	if err != nil {
		t.Fatal(err)
	}
	free := testutil.Fill(t, dir)
	var full error
	for i := 1; i <= 200 && full == nil; i++ { // until the WAL needs a page it cannot have
		_, _, full = q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: "col-a"})
	}
	if !errors.Is(full, queue.ErrStorageFull) {
		t.Fatalf("a write on a full disk: %v, want ErrStorageFull", full)
	}
	if j, err := q.Get(ctx, first.ID); err != nil || j.ID != first.ID {
		t.Errorf("a read on a full disk: %v", err)
	}
	free()
	if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-after", CollectorID: "col-a"}); err != nil {
		t.Fatalf("a write once space is freed: %v", err)
	}
	q.Close()
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check after the full disk: %q, %v", check, err)
	}
}
