package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/store"
)

// testPoolTampered: pool membership decides who is sealed a pool's
// secrets, so it carries a MAC like the keys do. A collector moved into a
// pool behind the store's back (by someone who can write the database
// and controls that collector) reads as in no pool, flagged; so does one
// given another collector's MAC, or an honest member moved to another
// pool. Its keys stay trusted (the pool is all that was altered), and
// setting its pool through the store repairs it.
func testPoolTampered(t *testing.T, b Backend) {
	if b.Raw == nil {
		t.Fatal("storetest: Backend.Raw is not set: the pool tamper case needs raw access to the database")
	}
	s := b.Store
	for _, id := range []string{"c1", "c2", "c3"} {
		collector(t, s, id)
	}
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: "c2", TokenHash: "h-c2", IdentityKey: []byte("k2"), HPKEKey: []byte("h2"),
		Now: time.Now()}, ev("collector.enrolled", "c2")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c3"} {
		if err := s.SetCollectorPool(ctx, id, "p1", ev("collector.pool_set", id)); err != nil {
			t.Fatal(err)
		}
	}
	raw := func(q string) {
		t.Helper()
		if err := b.Raw(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	inNoPool := func(id, how string) {
		t.Helper()
		c, err := s.Collector(ctx, id)
		if err != nil {
			t.Fatalf("%s: collector %s: %v", how, id, err)
		}
		if c.Pool != "" || !c.PoolTampered {
			t.Errorf("%s: collector %s reads as in pool %q, flagged %v; want no pool, flagged", how, id, c.Pool, c.PoolTampered)
		}
		if c.Tampered {
			t.Errorf("%s: collector %s's keys are flagged too", how, id)
		}
	}

	raw(`UPDATE collectors SET pool = 'p1' WHERE id = 'c2'`)
	inNoPool("c2", "moved into p1 behind the store's back")
	if c, _ := s.Collector(ctx, "c2"); string(c.IdentityKey) != "k2" || string(c.HPKEKey) != "h2" {
		t.Errorf("keys of the collector moved behind the store's back: %q %q, want them kept", c.IdentityKey, c.HPKEKey)
	}
	raw(`UPDATE collectors SET pool_mac = (SELECT pool_mac FROM collectors WHERE id = 'c1') WHERE id = 'c2'`)
	inNoPool("c2", "moved into p1 with c1's MAC")
	raw(`UPDATE collectors SET pool = 'p2' WHERE id = 'c3'`)
	inNoPool("c3", "an honest member moved to p2 behind the store's back")

	if c, err := s.Collector(ctx, "c1"); err != nil || c.Pool != "p1" || c.PoolTampered {
		t.Errorf("the honest member: %+v, %v; want it in p1, unflagged", c, err)
	}
	if m, err := s.PoolMembers(ctx, "p1", 10); err != nil || len(m) != 1 || m[0].ID != "c1" {
		t.Errorf("members of p1 = %+v, %v; want c1 alone", m, err)
	}
	if m, err := s.PoolMembers(ctx, "p2", 10); err != nil || len(m) != 0 {
		t.Errorf("members of p2 = %+v, %v; want none", m, err)
	}
	list, err := s.Collectors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if (c.ID == "c2" || c.ID == "c3") && (c.Pool != "" || !c.PoolTampered) {
			t.Errorf("listed: %s in pool %q, flagged %v; want no pool, flagged", c.ID, c.Pool, c.PoolTampered)
		}
	}
	page, _, err := s.CollectorsPage(ctx, store.CollectorFilter{Query: "c2", Limit: 10})
	if err != nil || len(page) != 1 || page[0].Pool != "" || !page[0].PoolTampered {
		t.Errorf("page = %+v, %v; want c2 in no pool, flagged", page, err)
	}

	// Out of every pool, a row grants nothing: it is not flagged,
	// whatever its MAC.
	raw(`UPDATE collectors SET pool = '', pool_mac = NULL WHERE id = 'c3'`)
	if c, err := s.Collector(ctx, "c3"); err != nil || c.Pool != "" || c.PoolTampered {
		t.Errorf("taken out of its pool behind the store's back: %+v, %v; want no pool, unflagged", c, err)
	}
	// Setting the pool through the store repairs the row.
	if err := s.SetCollectorPool(ctx, "c2", "p1", ev("collector.pool_set", "c2")); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Collector(ctx, "c2"); err != nil || c.Pool != "p1" || c.PoolTampered {
		t.Errorf("after setting its pool through the store: %+v, %v; want it in p1, unflagged", c, err)
	}
	if m, err := s.PoolMembers(ctx, "p1", 10); err != nil || len(m) != 2 {
		t.Errorf("members of p1 after the repair = %+v, %v; want c1 and c2", m, err)
	}
	// A collector created in a pool is a member.
	now := time.Now()
	if err := s.CreateCollector(ctx, store.Collector{ID: "c4", Name: "c4", Pool: "p1", CreatedAt: now},
		store.EnrollmentToken{Hash: "h-c4", CollectorID: "c4", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("collector.created", "c4")); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Collector(ctx, "c4"); err != nil || c.Pool != "p1" || c.PoolTampered {
		t.Errorf("created in p1: %+v, %v; want it in p1, unflagged", c, err)
	}
}

// PoolsAdoptedOnce is the upgrade case of pool MACs, after a backend's
// test has sent its database back to the version before them with
// col_in in pool dc1 and col_out in none: open (the store of this
// version on that database) MACs the memberships once and audits the
// adoption with them; a membership edited in afterwards (raw, on the
// database behind the store) is not adopted by a later start: it reads
// as in no pool, flagged.
func PoolsAdoptedOnce(t *testing.T, open func() store.Store, raw func(query string) error) {
	t.Helper()
	s := open()
	if c, err := s.Collector(ctx, "col_in"); err != nil || c.Pool != "dc1" || c.PoolTampered {
		t.Errorf("member after the upgrade: %+v, %v; want it in dc1, unflagged", c, err)
	}
	if c, err := s.Collector(ctx, "col_out"); err != nil || c.Pool != "" || c.PoolTampered {
		t.Errorf("collector in no pool after the upgrade: %+v, %v", c, err)
	}
	adopted := poolAdoptions(t, s)
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

	if err := raw(`UPDATE collectors SET pool = 'dc1', pool_mac = NULL WHERE id = 'col_out'`); err != nil {
		t.Fatal(err)
	}
	s = open()
	if c, err := s.Collector(ctx, "col_out"); err != nil || c.Pool != "" || !c.PoolTampered {
		t.Errorf("moved into dc1 after the upgrade: %+v, %v; want no pool, flagged", c, err)
	}
	if n := len(poolAdoptions(t, s)); n != 1 {
		t.Errorf("%d %s entries after a restart, want 1", n, store.ActionPoolsAdopted)
	}
}

// poolAdoptions returns the audit entries of pool adoptions.
func poolAdoptions(t *testing.T, s store.Store) []store.AuditEntry {
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
