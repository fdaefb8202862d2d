package sqlite_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/queue"
)

// The writes that run outside a transaction (sign-in bookkeeping, device
// grants) say a full disk as queue.ErrStorageFull too, which the API
// answers 503 with storage_full, not 500.
func TestDirectWritesOnAFullDisk(t *testing.T) {
	dir := testutil.SmallDisk(t, 8<<20)
	s, err := sqlite.Open(ctx, filepath.Join(dir, "p.db"), sqlite.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	free := testutil.Fill(t, dir)
	defer free()
	now := time.Now()
	var full error
	for i := 0; i < 2000 && full == nil; i++ { // until the WAL needs a page it cannot have
		full = s.PutDeviceGrant(ctx, access.DeviceGrant{CodeHash: fmt.Sprintf("hash-%d-%s", i, string(make([]byte, 200))),
			UserCode: fmt.Sprintf("CODE-%d", i), CreatedAt: now, ExpiresAt: now.Add(time.Minute), Source: "test"})
	}
	if !errors.Is(full, queue.ErrStorageFull) {
		t.Fatalf("a device grant on a full disk: %v, want ErrStorageFull", full)
	}
}
