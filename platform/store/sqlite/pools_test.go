package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/storetest"
)

// TestPoolMACsAdoptedOnce: a database of the version before pool
// memberships carried MACs (its integrity marker at "1", no pool_mac
// column) is opened by this one: its memberships are MAC'd once, and the
// adoption is audited with them. A membership edited in afterwards is not
// adopted by a later start: it reads as in no pool, flagged.
func TestPoolMACsAdoptedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	enrolled(t, s, "col_in", []byte("k-in"))
	enrolled(t, s, "col_out", []byte("k-out"))
	if err := s.SetCollectorPool(ctx, "col_in", "dc1", ev("collector.pool_set", "col_in")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	in, err := store.NewIntegrity(testKey)
	if err != nil {
		t.Fatal(err)
	}
	db := raw(t, path)
	for _, q := range []string{
		`ALTER TABLE collectors DROP COLUMN pool_mac`,
		`DELETE FROM schema_migrations WHERE version = 14`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.Exec(`UPDATE settings SET value = '1', mac = ? WHERE key = 'integrity'`,
		in.Sum(store.MACSetting, []byte("integrity"), []byte("1"))); err != nil {
		t.Fatal(err)
	}

	storetest.PoolsAdoptedOnce(t, func() store.Store { return open(t, path) }, func(q string) error {
		_, err := raw(t, path).Exec(q)
		return err
	})
}
