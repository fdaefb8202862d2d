package postgres_test

import (
	"testing"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/storetest"
)

// TestPoolMACsAdoptedWithTheMigration: a database of the version before
// pool memberships carried MACs (migration 3, no pool_mac column) is
// migrated by this one, the memberships MAC'd in the migration's
// transaction: storetest.PoolsAdoptedOnce.
func TestPoolMACsAdoptedWithTheMigration(t *testing.T) {
	url := pgtest.NewDB(t)
	s := open(t, url, nil)
	enrollCollector(t, s, "col_in", []byte("k-in"))
	enrollCollector(t, s, "col_out", []byte("k-out"))
	if err := s.SetCollectorPool(ctx, "col_in", "dc1", act("collector.pool_set", "col_in")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawConn(t, url)
	for _, q := range []string{
		`ALTER TABLE collectors DROP COLUMN pool_mac`,
		`DELETE FROM store_migrations WHERE version = 4`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	storetest.PoolsAdoptedOnce(t, func() store.Store { return open(t, url, nil) }, func(q string) error {
		_, err := db.Exec(ctx, q)
		return err
	})
}
