package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/platform/store/storetest"
	"github.com/collectorhq/collector/queue"
)

// The database is not the trust root: an attacker with write access to
// the database, but not to the integrity key, cannot add a collector, swap
// its keys or mint a token (as the SQLite store's integrity tests).

// rawConn connects to the database directly, as an attacker with write
// access to it would.
func rawConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	return c
}

func act(action, target string) store.Event {
	return store.Event{Time: time.Now(), Actor: "test", Action: action, Target: target}
}

// addCollector creates a collector whose enrollment token hash is "h-"+id.
func addCollector(t *testing.T, s *postgres.Store, id string) {
	t.Helper()
	now := time.Now()
	err := s.CreateCollector(ctx, store.Collector{ID: id, Name: id, CreatedAt: now},
		store.EnrollmentToken{Hash: "h-" + id, CollectorID: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, act("collector.created", id))
	if err != nil {
		t.Fatal(err)
	}
}

func enrollCollector(t *testing.T, s *postgres.Store, id string, key []byte) {
	t.Helper()
	addCollector(t, s, id)
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: id, TokenHash: "h-" + id, IdentityKey: key, HPKEKey: []byte("hpke-" + id), Now: time.Now()},
		act("collector.enrolled", id)); err != nil {
		t.Fatal(err)
	}
}

func TestInsertedCollectorNotTrusted(t *testing.T) {
	url := pgtest.NewDB(t)
	s := open(t, url, nil)
	enrollCollector(t, s, "col_real", []byte("real-key"))
	if _, err := rawConn(t, url).Exec(ctx, `INSERT INTO collectors(id, name, pool, created_at, enrolled_at, identity_key, hpke_key) VALUES
		('col_evil', 'evil', '', 1, 1, '\x0102', '\x0304')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collector(ctx, "col_evil"); !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("inserted collector: %v, want ErrIntegrity", err)
	}
	list, err := s.Collectors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("listed %d collectors, want 2", len(list))
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
	url := pgtest.NewDB(t)
	s := open(t, url, nil)
	enrollCollector(t, s, "col_a", []byte("real-key"))
	if _, err := rawConn(t, url).Exec(ctx, `UPDATE collectors SET hpke_key = '\x0909' WHERE id = 'col_a'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collector(ctx, "col_a"); !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("collector with swapped keys: %v, want ErrIntegrity", err)
	}
	page, _, err := s.CollectorsPage(ctx, store.CollectorFilter{Limit: 10})
	if err != nil || len(page) != 1 || !page[0].Tampered || page[0].HPKEKey != nil {
		t.Errorf("page = %+v, %v; want the collector flagged, without keys", page, err)
	}
}

func TestMintedTokensRefused(t *testing.T) {
	url := pgtest.NewDB(t)
	s := open(t, url, nil)
	key := []byte("real-key")
	enrollCollector(t, s, "col_a", key)
	db := rawConn(t, url)
	exp := time.Now().Add(time.Hour).UnixNano()
	if _, err := db.Exec(ctx, `INSERT INTO access_tokens(hash, collector_id, expires_at, key_fp) VALUES ($1, 'col_a', $2, $3)`,
		crypto.HashToken("minted"), exp, crypto.Fingerprint(key)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccessTokenCollector(ctx, crypto.HashToken("minted"), time.Now()); !errors.Is(err, store.ErrAccessInvalid) {
		t.Errorf("minted access token: %v, want ErrAccessInvalid", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO enrollment_tokens(hash, collector_id, created_at, expires_at) VALUES ('h-minted', 'col_a', 1, $1)`, exp); err != nil {
		t.Fatal(err)
	}
	err := s.Enroll(ctx, store.Enrollment{CollectorID: "col_a", TokenHash: "h-minted", IdentityKey: []byte("evil"), Now: time.Now()}, act("e", "col_a"))
	if !errors.Is(err, store.ErrTokenInvalid) {
		t.Errorf("enroll with a minted token: %v, want ErrTokenInvalid", err)
	}
	if c, err := s.Collector(ctx, "col_a"); err != nil || !bytes.Equal(c.IdentityKey, key) {
		t.Errorf("keys after the refused enrollment: %v, %v", c.IdentityKey, err)
	}
}

// Replicas given the same assertion at the same moment issue one token:
// the jti's primary key refuses every other.
func TestJTIReplayAcrossReplicas(t *testing.T) {
	url := pgtest.NewDB(t)
	a, b := open(t, url, nil), open(t, url, nil)
	key := []byte("k")
	enrollCollector(t, a, "c1", key)
	now := time.Now()
	const tries = 8
	errs := make([]error, tries)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range tries {
		s := []*postgres.Store{a, b}[i%2]
		wg.Go(func() {
			<-start
			errs[i] = s.IssueAccessToken(ctx, "same-jti", now.Add(time.Minute), store.AccessToken{Hash: fmt.Sprintf("a%d", i), CollectorID: "c1",
				ExpiresAt: now.Add(15 * time.Minute), KeyFingerprint: crypto.Fingerprint(key)}, now)
		})
	}
	close(start)
	wg.Wait()
	issued := 0
	for i, err := range errs {
		switch {
		case err == nil:
			issued++
		case !errors.Is(err, store.ErrReplay):
			t.Errorf("exchange %d: %v, want nil or ErrReplay", i, err)
		}
	}
	if issued != 1 {
		t.Errorf("%d tokens issued for one jti, want 1", issued)
	}
	// Once expired (not yet pruned), the jti may be used again.
	later := now.Add(2 * time.Minute)
	if err := a.IssueAccessToken(ctx, "same-jti", later.Add(time.Minute), store.AccessToken{Hash: "late", CollectorID: "c1",
		ExpiresAt: later.Add(15 * time.Minute), KeyFingerprint: crypto.Fingerprint(key)}, later); err != nil {
		t.Errorf("reuse of an expired jti: %v", err)
	}
}

// Replicas enrolling with one token at once: one burns it, the others
// find it used, and the keys are the winner's.
func TestEnrollOneTokenAcrossReplicas(t *testing.T) {
	url := pgtest.NewDB(t)
	a, b := open(t, url, nil), open(t, url, nil)
	addCollector(t, a, "c1")
	const tries = 6
	errs := make([]error, tries)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range tries {
		s := []*postgres.Store{a, b}[i%2]
		wg.Go(func() {
			<-start
			errs[i] = s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "h-c1", IdentityKey: []byte{byte(i)}, Now: time.Now()}, act("collector.enrolled", "c1"))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("enrollments %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrTokenUsed):
			t.Errorf("enrollment %d: %v, want nil or ErrTokenUsed", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no enrollment succeeded")
	}
	if c, err := a.Collector(ctx, "c1"); err != nil || !bytes.Equal(c.IdentityKey, []byte{byte(winner)}) {
		t.Errorf("keys = %v, %v; want enrollment %d's", c.IdentityKey, err, winner)
	}
	if es, _ := a.AuditEntries(ctx, 0, 100); len(es) != 2 {
		t.Errorf("audit has %d entries, want 2 (created, enrolled)", len(es))
	}
}

func TestHeartbeatHistoryAndRollups(t *testing.T) {
	s := open(t, pgtest.NewDB(t), nil)
	enrollCollector(t, s, "c1", []byte("k"))
	enrollCollector(t, s, "c2", []byte("k"))
	addCollector(t, s, "c3")
	at := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 8 {
		hb := store.Heartbeat{At: at.Add(time.Duration(i) * 30 * time.Second), Running: i % 3, MemTotal: 100, MemFree: int64(50 - i), CPUs: 4, RunnerState: "running"}
		if err := s.RecordHeartbeat(ctx, "c1", hb, 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordHeartbeat(ctx, "c2", store.Heartbeat{At: at, RunnerState: "running", EngineError: "no engine"}, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordHeartbeat(ctx, "nope", store.Heartbeat{At: at}, 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("heartbeat of an unknown collector: %v, want ErrNotFound", err)
	}
	hbs, err := s.Heartbeats(ctx, "c1", 100)
	if err != nil || len(hbs) != 3 || hbs[0].MemFree != 43 {
		t.Fatalf("history = %+v, %v; want the newest 3", hbs, err)
	}
	rs, err := s.Rollups(ctx, "c1", at.Add(-time.Hour))
	want := []store.Rollup{
		{At: at, Beats: 8, MemTotal: 100, MemFreeMin: 43, CPUs: 4, RunningMax: 2},
	}
	if err != nil || fmt.Sprint(rs) != fmt.Sprint(want) {
		t.Errorf("rollups = %+v, %v; want %+v", rs, err, want)
	}
	c, err := s.Collector(ctx, "c1")
	if err != nil || c.LastBeat == nil || c.LastBeat.MemFree != 43 || !c.LastSeenAt.Equal(at.Add(210*time.Second)) {
		t.Errorf("collector = %+v, %v; want the last beat", c, err)
	}
	counts, err := s.CountCollectors(ctx, at.Add(time.Minute))
	if wantC := (store.StatusCounts{Pending: 1, Active: 1, Degraded: 0, Offline: 1}); err != nil || counts != wantC {
		t.Errorf("counts = %+v, %v; want %+v", counts, err, wantC)
	}
	counts, err = s.CountCollectors(ctx, at)
	if wantC := (store.StatusCounts{Pending: 1, Active: 1, Degraded: 1}); err != nil || counts != wantC {
		t.Errorf("counts = %+v, %v; want %+v", counts, err, wantC)
	}
	for status, want := range map[string]string{"pending": "c3", "active": "c1", "degraded": "c2"} {
		page, _, err := s.CollectorsPage(ctx, store.CollectorFilter{Status: status, ActiveSince: at, Limit: 10})
		if err != nil || len(page) != 1 || page[0].ID != want {
			t.Errorf("%s page = %+v, %v; want %s", status, page, err, want)
		}
	}
}

// A purge is queued in the deletion's transaction, once.
func TestDeleteIntegrationQueuesPurge(t *testing.T) {
	url := pgtest.NewDB(t)
	s := open(t, url, nil)
	addCollector(t, s, "c1")
	now := time.Now()
	for _, id := range []string{"kept", "purged"} {
		if err := s.CreateIntegration(ctx, store.Integration{ID: id, Name: id, Image: "img", SealedConfig: []byte("x"), Interval: time.Hour,
			CollectorID: "c1", CreatedAt: now, UpdatedAt: now}, act("integration.created", id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteIntegration(ctx, "kept", false, act("integration.deleted", "kept")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteIntegration(ctx, "purged", true, act("integration.deleted", "purged")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteIntegration(ctx, "purged", true, act("integration.deleted", "purged")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	rows, err := rawConn(t, url).Query(ctx, `SELECT integration_id FROM data_purges ORDER BY integration_id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || fmt.Sprint(ids) != "[purged]" {
		t.Errorf("purges queued = %v, %v; want [purged]", ids, err)
	}
}

func TestPages(t *testing.T) {
	s := open(t, pgtest.NewDB(t), nil)
	for _, id := range []string{"b_1", "a%1", "B2", "c1"} {
		addCollector(t, s, id)
	}
	var got []string
	for after := ""; ; {
		page, next, err := s.CollectorsPage(ctx, store.CollectorFilter{After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.ID)
		}
		if after = next; after == "" {
			break
		}
	}
	if fmt.Sprint(got) != "[B2 a%1 b_1 c1]" {
		t.Errorf("collectors paged = %v", got)
	}
	for q, want := range map[string]string{"%": "[a%1]", "_": "[b_1]", "b": "[B2 b_1]", "c1": "[c1]"} {
		page, _, err := s.CollectorsPage(ctx, store.CollectorFilter{Query: q, Limit: 10})
		var ids []string
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		if err != nil || fmt.Sprint(ids) != want {
			t.Errorf("query %q = %v, %v; want %s", q, ids, err, want)
		}
	}
	if _, _, err := s.CollectorsPage(ctx, store.CollectorFilter{After: "!", Limit: 3}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad cursor: %v, want ErrInvalid", err)
	}

	now := time.Now()
	for i, name := range []string{"ldap", "okta", "github"} {
		in := store.Integration{ID: fmt.Sprintf("i%d", i), Name: name, Image: "img/" + name, SealedConfig: []byte("x"), Interval: time.Hour,
			CollectorID: "c1", CreatedAt: now, UpdatedAt: now}
		if name == "okta" {
			in.CollectorID, in.Pool = "", "p"
		}
		if err := s.CreateIntegration(ctx, in, act("integration.created", in.ID)); err != nil {
			t.Fatal(err)
		}
	}
	ins, next, err := s.IntegrationsPage(ctx, store.IntegrationFilter{CollectorID: "c1", Limit: 1})
	if err != nil || len(ins) != 1 || ins[0].Name != "github" || next == "" {
		t.Fatalf("first page = %+v %q %v", ins, next, err)
	}
	ins, next, err = s.IntegrationsPage(ctx, store.IntegrationFilter{CollectorID: "c1", After: next, Limit: 1})
	if err != nil || len(ins) != 1 || ins[0].Name != "ldap" {
		t.Errorf("second page = %+v %q %v", ins, next, err)
	}
	if ins, _, err := s.IntegrationsPage(ctx, store.IntegrationFilter{Query: "IMG/OK", Limit: 10}); err != nil || len(ins) != 1 || ins[0].Pool != "p" {
		t.Errorf("query by image = %+v, %v", ins, err)
	}

	// 4 collectors and 3 integrations created: 7 entries, newest first.
	es, next, err := s.AuditPage(ctx, store.AuditFilter{Action: "collector.created", Limit: 3})
	if err != nil || len(es) != 3 || es[0].Seq != 4 || next == "" {
		t.Fatalf("audit page = %+v %q %v", es, next, err)
	}
	es, next, err = s.AuditPage(ctx, store.AuditFilter{Action: "collector.created", Before: next, Limit: 3})
	if err != nil || len(es) != 1 || es[0].Seq != 1 || next != "" {
		t.Errorf("audit page 2 = %+v %q %v", es, next, err)
	}
}

// Acts on a collector's target: pools, desired images.
func TestPoolsAndDesiredImage(t *testing.T) {
	s := open(t, pgtest.NewDB(t), nil)
	for _, id := range []string{"c1", "c2", "c3"} {
		addCollector(t, s, id)
	}
	for _, id := range []string{"c2", "c1"} {
		if err := s.SetCollectorPool(ctx, id, "p", act("collector.pool", id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetCollectorPool(ctx, "nope", "p", act("collector.pool", "nope")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pool of an unknown collector: %v", err)
	}
	if m, err := s.PoolMembers(ctx, "p", 10); err != nil || len(m) != 2 || m[0].ID != "c1" {
		t.Errorf("members = %+v, %v", m, err)
	}
	ids, err := s.SetDesiredImage(ctx, store.UpgradeTarget{Pool: "p"}, "img@sha256:1", "1.0", act("collectors.upgrade", "p"))
	if err != nil || len(ids) != 2 {
		t.Fatalf("set desired image = %v, %v", ids, err)
	}
	if _, err := s.SetDesiredImage(ctx, store.UpgradeTarget{Pool: "none"}, "img", "1", act("collectors.upgrade", "none")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("empty target: %v, want ErrNotFound", err)
	}
	if _, err := s.SetDesiredImage(ctx, store.UpgradeTarget{}, "img", "1", act("collectors.upgrade", "")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("no target: %v, want ErrInvalid", err)
	}
	if ids, err := s.SetDesiredImage(ctx, store.UpgradeTarget{All: true}, "img@sha256:2", "2.0", act("collectors.upgrade", "all")); err != nil || len(ids) != 3 {
		t.Errorf("all = %v, %v", ids, err)
	}
	if ok, err := s.ClearDesiredImage(ctx, "c1", "img@sha256:1", act("collector.upgraded", "c1")); err != nil || ok {
		t.Errorf("clear of an older image = %v, %v; want false", ok, err)
	}
	if ok, err := s.ClearDesiredImage(ctx, "c1", "img@sha256:2", act("collector.upgraded", "c1")); err != nil || !ok {
		t.Errorf("clear = %v, %v; want true", ok, err)
	}
	if c, err := s.Collector(ctx, "c1"); err != nil || c.DesiredImage != "" || c.DesiredVersion != "" {
		t.Errorf("after clear: %q %q, %v", c.DesiredImage, c.DesiredVersion, err)
	}
}

// BenchmarkRecordHeartbeat: storetest.BenchRecordHeartbeat on PostgreSQL.
func BenchmarkRecordHeartbeat(b *testing.B) {
	s, err := postgres.Open(ctx, pgtest.NewDB(b), postgres.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchRecordHeartbeat(b, s)
}
