package postgres_test

import (
	"testing"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/platform/store/storetest"
	"github.com/collectorhq/collector/queue"
)

func TestRekey(t *testing.T) {
	url := pgtest.NewDB(t)
	storetest.RunRekey(t, func(t *testing.T, keys ...[]byte) storetest.RekeyStore {
		s, err := postgres.Open(ctx, url, postgres.Options{IntegrityKey: keys[0], PreviousIntegrityKeys: keys[1:], Queue: queue.DefaultConfig()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
