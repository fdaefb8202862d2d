package platform_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
	"github.com/collectorhq/collector/platform/store"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

// The console at scale: a store seeded with 10,000 collectors, 1,000
// integrations, 100,000 jobs, 1,000,000 entities (in one integration, the
// worst case for its pages) and 100,000 audit entries; every list and
// detail page is timed in the server (its handler, no network), against
// /healthz in the same run. Run:
//
//	go test -tags '$(TAGS)' -run '^$' -bench BenchmarkConsolePages -benchtime 1x ./platform/
//
// and read p50-ms, p95-ms and x-healthz (p50 over healthz's p50) per page.

const (
	seedCollectors   = 10_000
	seedIntegrations = 1_000
	seedJobs         = 100_000
	seedEntities     = 1_000_000
	seedRelations    = 100_000
	seedAudit        = 100_000
)

type seeded struct {
	e          *platformtest.Env
	collector  string // a collector with integrations and jobs
	big        string // the integration with the million entities
	job        string
	entityKey  string
	searchTerm string
}

func seedScale(b *testing.B) *seeded {
	b.Helper()
	e := platformtest.Start(b)
	db, err := qsqlite.OpenDB(e.DBPath)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Now()
	start := now
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	exec := func(q string, args ...any) {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	prep := func(q string) *sql.Stmt {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	beat, _ := json.Marshal(store.Heartbeat{Version: "1.0.0", EngineKind: "podman", EngineVer: "4.3.1", CPUs: 4, MemTotal: 8 << 30, MemFree: 4 << 30, Running: 1, RunnerState: "running"})
	ins := prep(`INSERT INTO collectors(id, name, pool, created_at, enrolled_at, last_seen_at, last_beat) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	roll := prep(`INSERT INTO heartbeat_rollups(collector_id, bucket, beats, mem_total, mem_free_min, cpus, running_max) VALUES (?, ?, 10, ?, ?, 4, 1)`)
	cols := make([]string, seedCollectors)
	for i := range seedCollectors {
		cols[i] = seedID("col", i)
		seen := now.Add(-time.Duration(i%3) * time.Hour) // a third active
		if _, err := ins.ExecContext(ctx, cols[i], fmt.Sprintf("site-%05d", i), fmt.Sprintf("pool-%d", i%20), now.UnixNano(), now.UnixNano(), seen.UnixNano(), string(beat)); err != nil {
			b.Fatal(err)
		}
	}
	// 24 hours of 5-minute rollups for the collector whose page is timed.
	for k := range 288 {
		at := now.Add(-time.Duration(k) * 5 * time.Minute).Truncate(5 * time.Minute)
		roll.ExecContext(ctx, cols[0], at.UnixNano(), int64(8<<30), int64(4<<30)+int64(k)<<20)
	}
	insInt := prep(`INSERT INTO integrations(id, name, image, config, secret_fields, interval_sec, collector_id, network, created_at, updated_at) VALUES (?, ?, ?, ?, '["token"]', 3600, ?, '', ?, ?)`)
	ints := make([]string, seedIntegrations)
	for i := range seedIntegrations {
		ints[i] = seedID("int", i)
		in := store.Integration{ID: ints[i], Name: fmt.Sprintf("integration-%04d", i), Image: "registry.example/x:1",
			SecretFields: []string{"token"}, Interval: time.Hour, CollectorID: cols[i%100]}
		sealed, err := crypto.SealAtRest(e.DataKey, []byte(`{"count": 10, "token": "t0ken"}`), platform.ConfigAAD(in))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := insInt.ExecContext(ctx, in.ID, in.Name, in.Image, sealed, in.CollectorID, now.UnixNano(), now.UnixNano()); err != nil {
			b.Fatal(err)
		}
	}
	insJob := prep(`INSERT INTO queue_jobs(id, integration_id, collector_id, state, attempt, max_attempts, created_at, started_at, finished_at, peak_memory_bytes)
		VALUES (?, ?, ?, ?, 1, 3, ?, ?, ?, ?)`)
	states := []string{"succeeded", "succeeded", "succeeded", "failed", "canceled"}
	var lastJob string
	for i := range seedJobs {
		id := fmt.Sprintf("job_%032x", i)
		at := now.Add(-time.Duration(seedJobs-i) * time.Minute)
		if _, err := insJob.ExecContext(ctx, id, ints[i%seedIntegrations], cols[(i%seedIntegrations)%100], states[i%len(states)],
			at.UnixNano(), at.Add(time.Second).UnixNano(), at.Add(30*time.Second).UnixNano(), int64(64<<20)); err != nil {
			b.Fatal(err)
		}
		lastJob = id
	}
	insEnt := prep(`INSERT INTO data_entities(integration_id, key, type, class, properties, last_job_id, updated_at) VALUES (?, ?, ?, 'User', ?, ?, ?)`)
	for i := range seedEntities {
		key := fmt.Sprintf("user-%07d", i)
		if _, err := insEnt.ExecContext(ctx, ints[0], key, []string{"ldap_user", "ldap_group"}[i%2],
			fmt.Sprintf(`{"_key":%q,"name":"User %d","email":"u%d@example.com"}`, key, i, i), lastJob, now.UnixNano()); err != nil {
			b.Fatal(err)
		}
	}
	insRel := prep(`INSERT INTO data_relationships(integration_id, key, type, class, from_key, to_key, properties, last_job_id, updated_at) VALUES (?, ?, 'user_has_group', 'HAS', ?, ?, '{}', ?, ?)`)
	for i := range seedRelations {
		if _, err := insRel.ExecContext(ctx, ints[0], fmt.Sprintf("rel-%07d", i), fmt.Sprintf("user-%07d", i*10), fmt.Sprintf("user-%07d", i*10+1), lastJob, now.UnixNano()); err != nil {
			b.Fatal(err)
		}
	}
	var seq int64
	tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_log`).Scan(&seq)
	insAudit := prep(`INSERT INTO audit_log(seq, time, actor, action, target, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, '{}', 'x', 'y')`)
	for i := range seedAudit {
		seq++
		if _, err := insAudit.ExecContext(ctx, seq, now.Add(-time.Duration(seedAudit-i)*time.Second).UnixNano(),
			[]string{"user:alice", "user:bob", "scheduler"}[i%3], []string{"integration.updated", "job.requested", "collector.created"}[i%3], ints[i%seedIntegrations]); err != nil {
			b.Fatal(err)
		}
	}
	exec(`ANALYZE`)
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	var nc, ni, nj, ne int
	db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM collectors), (SELECT count(*) FROM integrations), (SELECT count(*) FROM queue_jobs), (SELECT count(*) FROM data_entities)`).Scan(&nc, &ni, &nj, &ne)
	if nc < seedCollectors || ni < seedIntegrations || nj < seedJobs || ne < seedEntities {
		b.Fatalf("seeded %d collectors, %d integrations, %d jobs, %d entities: fewer than asked", nc, ni, nj, ne)
	}
	b.Logf("seeded %d collectors, %d integrations, %d jobs, %d entities in %v", nc, ni, nj, ne, time.Since(start).Round(time.Second))
	return &seeded{e: e, collector: cols[0], big: ints[0], job: lastJob, entityKey: "user-0500000", searchTerm: "user-07"}
}

func BenchmarkConsolePages(b *testing.B) {
	s := seedScale(b)
	h := s.e.Server.Handler()
	call := func(path string) time.Duration {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+s.e.AdminToken)
		w := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(w, req)
		d := time.Since(t0)
		if w.Code != http.StatusOK {
			b.Fatalf("GET %s = %d: %.300s", path, w.Code, w.Body.String())
		}
		return d
	}
	const rounds = 40
	measure := func(path string) (p50, p95 time.Duration) {
		call(path) // warm
		ds := make([]time.Duration, rounds)
		for i := range ds {
			ds[i] = call(path)
		}
		slices.Sort(ds)
		return ds[rounds/2], ds[rounds*95/100]
	}
	base, _ := measure("/healthz")
	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"collectors", "/collectors"},
		{"collectors-search", "/collectors?q=site-09"},
		{"collectors-active", "/collectors?status=active"},
		{"collectors-page-100", "/collectors?after=" + cursorAfter(b, s, "/api/v1/collectors?limit=1000")},
		{"collector", "/collectors/" + s.collector},
		{"integrations", "/integrations"},
		{"integration", "/integrations/" + s.big},
		{"jobs", "/jobs"},
		{"jobs-failed", "/jobs?state=failed"},
		{"jobs-by-integration", "/jobs?integration=" + s.big},
		{"job", "/jobs/" + s.job},
		{"data", "/data?integration=" + s.big},
		{"data-type", "/data?integration=" + s.big + "&type=ldap_group"},
		{"entity-search", "/data?integration=" + s.big + "&q=" + s.searchTerm},
		{"entity", "/data/" + s.big + "/entity?key=" + s.entityKey},
		{"audit", "/audit"},
		{"audit-actor", "/audit?actor=user:bob"},
		{"users", "/users"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var p50, p95 time.Duration
			for b.Loop() {
				p50, p95 = measure(p.path)
			}
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p95.Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(p50)/float64(base), "x-healthz")
		})
	}
}

// seedID is a well-formed ID (base32, 26 letters) numbered i.
func seedID(prefix string, i int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := []byte("aaaaaaaaaaaaaaaaaaaaaaaaaa")
	for k := len(b) - 1; i > 0; k-- {
		b[k] = alphabet[i%32]
		i /= 32
	}
	return prefix + "_" + string(b)
}

// cursorAfter is the "next" of a large page: a cursor deep in the list.
func cursorAfter(b *testing.B, s *seeded, path string) string {
	var out struct {
		Next string `json:"next"`
	}
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+s.e.AdminToken)
	w := httptest.NewRecorder()
	s.e.Server.Handler().ServeHTTP(w, req)
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Next == "" {
		b.Fatalf("GET %s: %d %v", path, w.Code, err)
	}
	return out.Next
}
