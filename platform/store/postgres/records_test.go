package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/jobs/recordstest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/queue"
)

// leaseJob enqueues and leases a job of integ on s's queue.
func leaseJob(t testing.TB, s *postgres.Store, integ string) *queue.Job {
	t.Helper()
	if _, _, err := s.Queue().Enqueue(ctx, queue.EnqueueRequest{IntegrationID: integ, CollectorID: "col"}); err != nil {
		t.Fatal(err)
	}
	j, err := s.Queue().Next(ctx, queue.NextRequest{CollectorID: "col"})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func parseBatch(t testing.TB, j *queue.Job, seq int, lines []string) *jobs.Batch {
	t.Helper()
	b, _, err := jobs.ParseBatch(jobs.BatchKey{IntegrationID: j.IntegrationID, JobID: j.ID, LeaseID: j.LeaseID, Seq: seq},
		strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entityLines returns n entity lines with keys prefix0000... in order.
func entityLines(prefix string, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = recordstest.Entity(fmt.Sprintf("%s%04d", prefix, i), "user")
	}
	return lines
}

// together runs each fn at once in its own goroutine, started together,
// and waits for all.
func together(fns ...func()) {
	var start, wg sync.WaitGroup
	start.Add(1)
	for _, fn := range fns {
		wg.Go(func() {
			start.Wait()
			fn()
		})
	}
	start.Done()
	wg.Wait()
}

// One batch sent twice at once, through two replicas, is applied once
// (SQLite's single writer gave this for free): one answer is dup, the
// counts hold the batch once.
func TestConcurrentBatchAppliedOnce(t *testing.T) {
	url := pgtest.NewDB(t)
	a, b := open(t, url, nil), open(t, url, nil)
	j := leaseJob(t, a, "i1")
	const rounds, size = 10, 200
	for seq := 1; seq <= rounds; seq++ {
		batch := parseBatch(t, j, seq, entityLines(fmt.Sprintf("s%02d-", seq), size))
		var dups [2]bool
		var errs [2]error
		together(
			func() { dups[0], errs[0] = a.Records().Ingest(ctx, batch) },
			func() { dups[1], errs[1] = b.Records().Ingest(ctx, batch) },
		)
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("batch %d: ingest errors %v, %v", seq, errs[0], errs[1])
		}
		if dups[0] == dups[1] {
			t.Fatalf("batch %d: dup = %v, %v; want exactly one applied", seq, dups[0], dups[1])
		}
	}
	c, err := a.Records().Counts(ctx, j.ID)
	if err != nil || c.Records != rounds*size {
		t.Errorf("counts = %+v, %v; want %d records, each batch once", c, err, rounds*size)
	}
	p, err := a.Records().List(ctx, api.KindEntity, jobs.ListFilter{IntegrationID: "i1", Limit: jobs.MaxPageItems})
	if err != nil || len(p.Items) != rounds*size {
		t.Errorf("%d entities stored, %v; want %d", len(p.Items), err, rounds*size)
	}
}

// Two batches of one job that upsert the same keys in opposite orders,
// at once through two replicas, both apply: their row locks are taken in
// key order, so neither deadlocks the other.
func TestConcurrentOverlappingBatches(t *testing.T) {
	url := pgtest.NewDB(t)
	a, b := open(t, url, nil), open(t, url, nil)
	j := leaseJob(t, a, "i1")
	lines := entityLines("e", 500)
	reversed := make([]string, len(lines))
	for i, l := range lines {
		reversed[len(lines)-1-i] = l
	}
	for round := range 5 {
		b1, b2 := parseBatch(t, j, 2*round+1, lines), parseBatch(t, j, 2*round+2, reversed)
		var errs [2]error
		together(
			func() { _, errs[0] = a.Records().Ingest(ctx, b1) },
			func() { _, errs[1] = b.Records().Ingest(ctx, b2) },
		)
		if err := errors.Join(errs[:]...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if c, err := a.Records().Counts(ctx, j.ID); err != nil || c.Records != 10*500 {
		t.Errorf("counts = %+v, %v; want %d records", c, err, 10*500)
	}
}

// Log chunks of one job appended at once through two replicas are all
// kept, each once, and the cap counts them all.
func TestConcurrentLogChunks(t *testing.T) {
	url := pgtest.NewDB(t)
	a, b := open(t, url, nil), open(t, url, nil)
	j := leaseJob(t, a, "i1")
	const chunks = 20
	var fns []func()
	errs := make([]error, 2*chunks)
	for i := range chunks {
		text := []byte(fmt.Sprintf("%02d\n", i))
		k := jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: i + 1}
		// Each chunk twice, once per replica.
		fns = append(fns,
			func() { _, errs[2*i] = a.Records().AppendLogs(ctx, k, text) },
			func() { _, errs[2*i+1] = b.Records().AppendLogs(ctx, k, text) })
	}
	together(fns...)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	logs, err := a.Records().Logs(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(logs, "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	if len(lines) != chunks || len(seen) != chunks {
		t.Errorf("logs hold %d lines (%d distinct), want each of %d chunks once: %q", len(lines), len(seen), chunks, logs)
	}
}

// Logs are stored as sent, any bytes (SQLite keeps them so): a NUL, bytes
// that are not UTF-8, and a multi-byte character cut by the cap.
func TestLogsAnyBytes(t *testing.T) {
	s := open(t, pgtest.NewDB(t), nil)
	j := leaseJob(t, s, "i1")
	odd := []byte("nul \x00, not utf-8 \xff\xfe\n")
	if _, err := s.Records().AppendLogs(ctx, jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: 1}, odd); err != nil {
		t.Fatal(err)
	}
	// Fill up to one byte before the cap, then send a 3-byte character.
	fill := make([]byte, jobs.MaxJobLogBytes-len(odd)-1)
	for i := range fill {
		fill[i] = 'x'
	}
	for seq, text := range [][]byte{fill, []byte("€")} {
		if _, err := s.Records().AppendLogs(ctx, jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: seq + 2}, text); err != nil {
			t.Fatalf("chunk %d: %v", seq+2, err)
		}
	}
	logs, err := s.Records().Logs(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := string(odd) + string(fill) + "€"[:1] + fmt.Sprintf("[platform: 2 bytes of logs dropped over the %d-byte cap]\n", jobs.MaxJobLogBytes)
	if logs != want {
		t.Errorf("logs of %d bytes, want %d: starts %q, ends %q", len(logs), len(want), logs[:min(40, len(logs))], logs[max(0, len(logs)-80):])
	}
}

// A key holding a NUL (sent escaped, "\u0000"), which PostgreSQL's text
// cannot hold, is refused with its line by the one record parser; the
// rest of the batch is stored.
func TestNULKeyRefused(t *testing.T) {
	s := open(t, pgtest.NewDB(t), nil)
	j := leaseJob(t, s, "i1")
	b := parseBatch(t, j, 1, []string{recordstest.Entity("ok", "t"), `{"entity":{"_key":"a\u0000b","_type":"t","_class":"c"}}`})
	if len(b.Records) != 1 || b.Refused != 1 {
		t.Fatalf("parsed %d records, %d refused; want 1 and 1", len(b.Records), b.Refused)
	}
	if _, err := s.Records().Ingest(ctx, b); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := s.Records().Applied(ctx, b.Key); err != nil || !ok || c.Accepted != 1 || c.Refused != 1 {
		t.Errorf("Applied = %+v, %v, %v; want 1 accepted, 1 refused", c, ok, err)
	}
}

// Two replicas purging the same integration at once finish it: every
// row gone and the purge ended, never ended with rows left.
func TestConcurrentPurge(t *testing.T) {
	url := pgtest.NewDB(t)
	a, b := open(t, url, nil), open(t, url, nil)
	for i := range 3 {
		j := leaseJob(t, a, "gone")
		if _, err := a.Records().Ingest(ctx, parseBatch(t, j, 1, entityLines(fmt.Sprintf("r%d-", i), 300))); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Records().Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true}, jobs.RunReport{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Pool().Exec(ctx, `INSERT INTO data_purges(integration_id, requested_at) VALUES ('gone', 1)`); err != nil {
		t.Fatal(err)
	}
	var errs [2]error
	purge := func(s *postgres.Store, i int) func() {
		return func() {
			for {
				done, err := s.Records().Purge(ctx, 7)
				if err != nil || done {
					errs[i] = err
					return
				}
			}
		}
	}
	together(purge(a, 0), purge(b, 1))
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	var rows, purges, jobsLeft int
	err := a.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM data_entities), (SELECT count(*) FROM data_purges),
		(SELECT count(*) FROM queue_jobs WHERE integration_id = 'gone')`).Scan(&rows, &purges, &jobsLeft)
	if err != nil || rows != 0 || purges != 0 || jobsLeft != 0 {
		t.Errorf("after the purge: %d entities, %d purges, %d jobs left (%v); want none", rows, purges, jobsLeft, err)
	}
}

// linguisticDB creates a database whose default collation is ICU's
// en-US (accents sort as in a dictionary, not by byte), dropped when t
// ends, and returns its URL; it skips t when the server has no ICU (fails
// it under CI=true: Debian's PostgreSQL has ICU).
func linguisticDB(t *testing.T) string {
	t.Helper()
	srv := pgtest.Shared(t)
	name := fmt.Sprintf("icu_%d", time.Now().UnixNano())
	if _, err := srv.Exec("postgres", "CREATE DATABASE "+name+" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"); err != nil {
		if env.InCI() {
			t.Fatalf("no ICU collation on this server: %v", err)
		}
		t.Skipf("no ICU collation on this server: %v", err)
	}
	t.Cleanup(func() { srv.DropDB(name) })
	return srv.URL(name)
}

// Item and List's filters, which the shared suite uses little: each
// item's own properties, relationships by endpoint, key order and
// prefixes beyond ASCII in byte order (as on SQLite) even in a database
// whose locale sorts otherwise, deleted items on demand.
func TestRecordsItemAndFilters(t *testing.T) {
	s := open(t, linguisticDB(t), nil)
	recs := s.Records()
	j := leaseJob(t, s, "i1")
	lines := []string{
		`{"entity":{"_key":"é1","_type":"user","_class":"User","n":1}}`,
		`{"entity":{"_key":"é2","_type":"group","_class":"Group","n":2}}`,
		`{"entity":{"_key":"ez","_type":"user","_class":"User","n":3}}`,
		`{"relationship":{"_key":"r1","_type":"t","_class":"HAS","_fromEntityKey":"é1","_toEntityKey":"é2"}}`,
		`{"relationship":{"_key":"r2","_type":"t","_class":"HAS","_fromEntityKey":"ez","_toEntityKey":"é2"}}`,
	}
	if _, err := recs.Ingest(ctx, parseBatch(t, j, 1, lines)); err != nil {
		t.Fatal(err)
	}
	it, err := recs.Item(ctx, api.KindRelationship, "i1", "r2")
	if err != nil || it.From != "ez" || it.To != "é2" || it.Class != "HAS" || it.JobID != j.ID || it.UpdatedAt.IsZero() || it.DeletedAt != nil {
		t.Errorf("Item(r2) = %+v, %v", it, err)
	}
	if _, err := recs.Item(ctx, api.KindEntity, "i1", "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Item(an entity that is not) = %v, want ErrNotFound", err)
	}
	list := func(kind string, f jobs.ListFilter) string {
		t.Helper()
		f.IntegrationID, f.Limit = "i1", 10
		p, err := recs.List(ctx, kind, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range p.Items {
			out = append(out, it.Key+"="+string(it.Properties))
		}
		return strings.Join(out, " ")
	}
	if got, want := list(api.KindEntity, jobs.ListFilter{Type: "user"}),
		`ez={"_key":"ez","_type":"user","_class":"User","n":3} é1={"_key":"é1","_type":"user","_class":"User","n":1}`; got != want {
		t.Errorf("users = %s, want %s (byte order, each its own properties)", got, want)
	}
	if got := list(api.KindEntity, jobs.ListFilter{KeyPrefix: "é"}); !strings.HasPrefix(got, "é1=") || strings.Count(got, "=") != 2 {
		t.Errorf("prefix é = %s, want é1 and é2", got)
	}
	if got := list(api.KindRelationship, jobs.ListFilter{To: "é2", From: "ez"}); !strings.HasPrefix(got, "r2=") || strings.Count(got, "=") != 1 {
		t.Errorf("from ez to é2 = %s, want r2", got)
	}
	if _, _, err := recs.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true}, jobs.RunReport{}); err != nil {
		t.Fatal(err)
	}
	j2 := leaseJob(t, s, "i1")
	if _, err := recs.Ingest(ctx, parseBatch(t, j2, 1, lines[:1])); err != nil {
		t.Fatal(err)
	}
	if _, sw, err := recs.Finish(ctx, j2.ID, j2.LeaseID, queue.Result{Succeeded: true}, jobs.RunReport{}); err != nil || sw != (jobs.Sweep{Entities: 2, Relationships: 2}) {
		t.Fatalf("finish = %+v, %v; want 2 entities and 2 relationships swept", sw, err)
	}
	if got := list(api.KindEntity, jobs.ListFilter{}); !strings.HasPrefix(got, "é1=") || strings.Count(got, "=") != 1 {
		t.Errorf("live entities = %s, want é1", got)
	}
	if it, err := recs.Item(ctx, api.KindEntity, "i1", "ez"); err != nil || it.DeletedAt == nil || it.DeletedAt.Before(it.UpdatedAt) {
		t.Errorf("Item(swept ez) = %+v, %v; want it marked deleted", it, err)
	}
	if got := list(api.KindRelationship, jobs.ListFilter{IncludeDeleted: true}); strings.Count(got, "=") != 2 {
		t.Errorf("all relationships = %s, want r1 and r2 kept", got)
	}
}
