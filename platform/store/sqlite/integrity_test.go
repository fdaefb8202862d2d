package sqlite_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/jobs/recordstest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/queue"
)

// The database is not the trust root (P6 item 6): an attacker with write
// access to the database file, but not to the data directory's key, cannot
// add a collector, swap its keys, mint a token or rewrite the audit log.

func enrolled(t *testing.T, s *sqlite.Store, id string, key []byte) {
	t.Helper()
	collector(t, s, id)
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: id, TokenHash: "h-" + id, IdentityKey: key, HPKEKey: []byte("hpke-" + id), Now: time.Now()},
		ev("collector.enrolled", id)); err != nil {
		t.Fatal(err)
	}
}

func TestInsertedCollectorNotTrusted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	enrolled(t, s, "col_real", []byte("real-key"))
	db := raw(t, path)
	if _, err := db.Exec(`INSERT INTO collectors(id, name, pool, created_at, enrolled_at, identity_key, hpke_key) VALUES
		('col_evil', 'evil', '', 1, 1, X'0102', X'0304')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collector(ctx, "col_evil"); !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("inserted collector: %v, want ErrIntegrity", err)
	}
	list, err := s.Collectors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.ID == "col_evil" && (!c.Tampered || c.IdentityKey != nil || c.HPKEKey != nil) {
			t.Errorf("inserted collector listed with its keys: %+v", c)
		}
		if c.ID == "col_real" && c.Tampered {
			t.Errorf("the real collector is flagged: %+v", c)
		}
	}
}

func TestSwappedKeysNotTrusted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	enrolled(t, s, "col_a", []byte("real-key"))
	if _, err := raw(t, path).Exec(`UPDATE collectors SET hpke_key = X'0909' WHERE id = 'col_a'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collector(ctx, "col_a"); !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("collector with swapped keys: %v, want ErrIntegrity", err)
	}
}

func TestMintedTokensRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	key := []byte("real-key")
	enrolled(t, s, "col_a", key)
	db := raw(t, path)
	exp := time.Now().Add(time.Hour).UnixNano()
	if _, err := db.Exec(`INSERT INTO access_tokens(hash, collector_id, expires_at, key_fp) VALUES (?, 'col_a', ?, ?)`,
		crypto.HashToken("minted"), exp, crypto.Fingerprint(key)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccessTokenCollector(ctx, crypto.HashToken("minted"), time.Now()); !errors.Is(err, store.ErrAccessInvalid) {
		t.Errorf("minted access token: %v, want ErrAccessInvalid", err)
	}
	if _, err := db.Exec(`INSERT INTO enrollment_tokens(hash, collector_id, created_at, expires_at) VALUES ('h-minted', 'col_a', 1, ?)`, exp); err != nil {
		t.Fatal(err)
	}
	err := s.Enroll(ctx, store.Enrollment{CollectorID: "col_a", TokenHash: "h-minted", IdentityKey: []byte("evil"), Now: time.Now()}, ev("e", "col_a"))
	if !errors.Is(err, store.ErrTokenInvalid) {
		t.Errorf("enroll with a minted token: %v, want ErrTokenInvalid", err)
	}
	if c, err := s.Collector(ctx, "col_a"); err != nil || !bytes.Equal(c.IdentityKey, key) {
		t.Errorf("keys after the refused enrollment: %v, %v", c.IdentityKey, err)
	}
}

func TestEditedSettingRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	if err := s.PutSetting(ctx, "admin_token_hash", crypto.HashToken("real"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := raw(t, path).Exec(`UPDATE settings SET value = ? WHERE key = 'admin_token_hash'`, crypto.HashToken("attacker")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Setting(ctx, "admin_token_hash"); !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("edited setting: %v, want ErrIntegrity", err)
	}
}

// TestRechainedAuditDetected: deleting an entry and recomputing every
// later hash (what the hash chain alone cannot detect) fails the MACs.
func TestRechainedAuditDetected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	for i := 0; i < 5; i++ {
		collector(t, s, fmt.Sprintf("c%d", i))
	}
	db := raw(t, path)
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT seq, time, actor, action, target, details FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var es []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var tm int64
		if err := rows.Scan(&e.Seq, &tm, &e.Actor, &e.Action, &e.Target, &e.Details); err != nil {
			t.Fatal(err)
		}
		e.Time = time.Unix(0, tm).UTC()
		es = append(es, e)
	}
	rows.Close()
	if _, err := db.Exec(`DELETE FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	prev := store.GenesisHash
	for i, e := range es {
		e.Seq, e.PrevHash = int64(i+1), prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
		if _, err := db.Exec(`INSERT INTO audit_log(seq, time, actor, action, target, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)`,
			e.Seq, e.Time.UnixNano(), e.Actor, e.Action, e.Target, e.Details, e.PrevHash, e.Hash); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || r.BadSeq != 1 || !strings.Contains(r.Reason, "MAC") {
		t.Errorf("re-chained log verified as %+v; want the MAC to fail at seq 1", r)
	}
}

// TestTruncatedAuditDetected: deleting the newest entries leaves a valid
// chain; the checkpoint saved outside the database catches it.
func TestTruncatedAuditDetected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	for i := 0; i < 4; i++ {
		collector(t, s, fmt.Sprintf("c%d", i))
	}
	head, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw(t, path).Exec(`DELETE FROM audit_log WHERE seq > 2`); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.VerifyAudit(ctx); !r.OK {
		t.Fatalf("without a checkpoint the shorter chain is valid: %+v", r)
	}
	if r, _ := s.VerifyAudit(ctx, head); r.OK || !strings.Contains(r.Reason, "deleted") {
		t.Errorf("truncated chain against its checkpoint: %+v; want refused", r)
	}
}

func TestIntegrityKeyMustMatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	collector(t, s, "c1")
	s.Close()
	_, err := sqlite.Open(ctx, path, sqlite.Options{IntegrityKey: bytes.Repeat([]byte{8}, 32), Queue: queue.DefaultConfig()})
	if !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("open with another key: %v, want ErrIntegrity", err)
	}
}

// TestAdoptionOnlyWhenAllowed: a database written before MACs existed is
// adopted once, when the data dir allows it (its pool memberships too);
// later, rows without MACs (or a removed marker) are refused, not
// laundered.
func TestAdoptionOnlyWhenAllowed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	enrolled(t, s, "col_a", []byte("k"))
	if err := s.SetCollectorPool(ctx, "col_a", "dc1", ev("collector.pool_set", "col_a")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := raw(t, path)
	for _, q := range []string{`UPDATE collectors SET keys_mac = NULL, pool_mac = NULL`, `UPDATE audit_log SET mac = ''`, `DELETE FROM settings`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	_, err := sqlite.Open(ctx, path, sqlite.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig()})
	if !errors.Is(err, sqlite.ErrIntegrityAdoption) {
		t.Fatalf("open of an unmarked database: %v, want ErrIntegrityAdoption", err)
	}
	s2, err := sqlite.Open(ctx, path, sqlite.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig(), AdoptIntegrity: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if c, err := s2.Collector(ctx, "col_a"); err != nil || c.Pool != "dc1" || c.PoolTampered {
		t.Errorf("adopted collector: %+v, %v; want it in dc1, unflagged", c, err)
	}
	if r, err := s2.VerifyAudit(ctx); err != nil || !r.OK {
		t.Errorf("adopted audit log: %+v, %v", r, err)
	}
}

// TestPurgeDeletesEverything: deleting an integration with purge removes
// its entities, relationships, jobs and logs in bounded steps.
func TestPurgeDeletesEverything(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "p.db"))
	collector(t, s, "col_a")
	now := time.Now()
	for _, id := range []string{"int_gone", "int_kept"} {
		if err := s.CreateIntegration(ctx, store.Integration{ID: id, Name: id, Image: "i", SealedConfig: []byte("x"), Interval: time.Hour,
			CollectorID: "col_a", CreatedAt: now, UpdatedAt: now}, ev("integration.created", id)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Queue().Enqueue(ctx, queue.EnqueueRequest{IntegrationID: id, CollectorID: "col_a"}); err != nil {
			t.Fatal(err)
		}
		j, err := s.Queue().Next(ctx, queue.NextRequest{CollectorID: "col_a"})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for i := 0; i < 30; i++ {
			lines = append(lines, recordstest.Entity(fmt.Sprintf("k%d", i), "t"))
		}
		b, _, err := jobs.ParseBatch(jobs.BatchKey{IntegrationID: id, JobID: j.ID, LeaseID: j.LeaseID, Seq: 1}, strings.NewReader(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Records().Ingest(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Records().AppendLogs(ctx, jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: 1}, []byte("log\n")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Records().Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true}, jobs.RunReport{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteIntegration(ctx, "int_gone", true, ev("integration.deleted", "int_gone")); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for done := false; !done; steps++ {
		var err error
		if done, err = s.Records().Purge(ctx, 7); err != nil {
			t.Fatal(err)
		}
		if steps > 100 {
			t.Fatal("purge never finished")
		}
	}
	if steps < 5 {
		t.Errorf("purge took %d steps of 7 rows for 30+ rows: not bounded", steps)
	}
	count := func(integ string) int {
		p, err := s.Records().List(ctx, api.KindEntity, jobs.ListFilter{IntegrationID: integ, IncludeDeleted: true, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Items)
	}
	if n := count("int_gone"); n != 0 {
		t.Errorf("%d entities of the purged integration left", n)
	}
	if n := count("int_kept"); n != 30 {
		t.Errorf("kept integration has %d entities, want 30", n)
	}
	if list, _ := s.Queue().List(ctx, queue.Filter{IntegrationID: "int_gone"}); len(list) != 0 {
		t.Errorf("%d jobs of the purged integration left", len(list))
	}
	if list, _ := s.Queue().List(ctx, queue.Filter{IntegrationID: "int_kept"}); len(list) != 1 {
		t.Errorf("kept integration has %d jobs, want 1", len(list))
	}
}
