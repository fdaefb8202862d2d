package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/platform/store/storetest"
	"github.com/collectorhq/collector/queue"
)

func TestRekey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	storetest.RunRekey(t, func(t *testing.T, keys ...[]byte) storetest.RekeyStore {
		s, err := sqlite.Open(ctx, path, sqlite.Options{IntegrityKey: keys[0], PreviousIntegrityKeys: keys[1:], Queue: queue.DefaultConfig()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
