package postgres_test

import (
	"encoding/json"
	"testing"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/postgres"
)

// TestPoolMACsAdoptedWithTheMigration: a database of the version before
// pool memberships carried MACs (migration 3, no pool_mac column) is
// migrated by this one: its memberships are MAC'd in the migration's
// transaction, and the adoption is audited with them. A membership edited
// in afterwards is not adopted by a later start: it reads as in no pool,
// flagged.
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

	s = open(t, url, nil)
	if c, err := s.Collector(ctx, "col_in"); err != nil || c.Pool != "dc1" || c.PoolTampered {
		t.Errorf("member after the upgrade: %+v, %v; want it in dc1, unflagged", c, err)
	}
	if c, err := s.Collector(ctx, "col_out"); err != nil || c.Pool != "" || c.PoolTampered {
		t.Errorf("collector in no pool after the upgrade: %+v, %v", c, err)
	}
	adopted := adoptions(t, s)
	if len(adopted) != 1 {
		t.Fatalf("%d %s entries, want 1", len(adopted), store.ActionPoolsAdopted)
	}
	var d struct {
		Collectors int
		Members    map[string]string
	}
	if err := json.Unmarshal([]byte(adopted[0].Details), &d); err != nil || d.Collectors != 1 || d.Members["col_in"] != "dc1" {
		t.Errorf("adoption audited as %s (%v); want col_in in dc1", adopted[0].Details, err)
	}
	if r, err := s.VerifyAudit(ctx); err != nil || !r.OK {
		t.Errorf("audit after the adoption: %+v, %v", r, err)
	}
	s.Close()

	if _, err := db.Exec(ctx, `UPDATE collectors SET pool = 'dc1', pool_mac = NULL WHERE id = 'col_out'`); err != nil {
		t.Fatal(err)
	}
	s = open(t, url, nil)
	if c, err := s.Collector(ctx, "col_out"); err != nil || c.Pool != "" || !c.PoolTampered {
		t.Errorf("moved into dc1 after the upgrade: %+v, %v; want no pool, flagged", c, err)
	}
	if n := len(adoptions(t, s)); n != 1 {
		t.Errorf("%d %s entries after a restart, want 1", n, store.ActionPoolsAdopted)
	}
}

// adoptions returns the audit entries of pool adoptions.
func adoptions(t *testing.T, s *postgres.Store) []store.AuditEntry {
	t.Helper()
	es, err := s.AuditEntries(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, e := range es {
		if e.Action == store.ActionPoolsAdopted {
			out = append(out, e)
		}
	}
	return out
}
