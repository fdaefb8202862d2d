// Package recordstest is the conformance suite of jobs.Records backends:
// Run(t, newBackend) checks what the platform relies on (batches applied
// once, writes refused once a lease is lost even mid-request, the sweep in
// the finish's transaction, bounded pages, bounded logs, purges and
// retention).
package recordstest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/queue"
)

// Backend is a record store and the queue it shares a database with.
type Backend struct {
	Records jobs.Records
	Queue   queue.Queue
	// Advance moves the backend's clock forward (retention tests).
	Advance func(time.Duration)
}

// Run runs the suite; newBackend returns a fresh, empty backend per test.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	for name, test := range map[string]func(*testing.T, Backend){
		"BatchAppliedOnce":           testBatchAppliedOnce,
		"WritesNeedALiveLease":       testWritesNeedALiveLease,
		"LogChunksOnce":              testLogChunksOnce,
		"LogsCapped":                 testLogsCapped,
		"FinishSweeps":               testFinishSweeps,
		"FailedFinishKeepsAll":       testFailedFinishKeepsAll,
		"Dangling":                   testDangling,
		"Pages":                      testPages,
		"PageByteBudget":             testPageByteBudget,
		"PruneFinishedJobs":          testPruneFinishedJobs,
		"CountsIncludeRunnerRefused": testCountsIncludeRunnerRefused,
		"LargeBatchLastRecordWins":   testLargeBatchLastRecordWins,
		"CountsOfTheLastAttempt":     testCountsOfTheLastAttempt,
		"NextSyncRewritesEveryKey":   testNextSyncRewritesEveryKey,
	} {
		t.Run(name, func(t *testing.T) { test(t, newBackend(t)) })
	}
}

var ctx = context.Background()

// Entity is one NDJSON entity line.
func Entity(key, typ string) string {
	return fmt.Sprintf(`{"entity":{"_key":%q,"_type":%q,"_class":"Record","v":1}}`, key, typ)
}

func relationship(key, from, to string) string {
	return fmt.Sprintf(`{"relationship":{"_key":%q,"_type":"t_has_t","_class":"HAS","_fromEntityKey":%q,"_toEntityKey":%q}}`, key, from, to)
}

// lease enqueues and leases a job of integ.
func lease(t *testing.T, b Backend, integ string) *queue.Job {
	t.Helper()
	if _, _, err := b.Queue.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: integ, CollectorID: "col"}); err != nil {
		t.Fatal(err)
	}
	j, err := b.Queue.Next(ctx, queue.NextRequest{CollectorID: "col"})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func batch(t *testing.T, j *queue.Job, seq int, lines ...string) *jobs.Batch {
	t.Helper()
	b, _, err := jobs.ParseBatch(jobs.BatchKey{IntegrationID: j.IntegrationID, JobID: j.ID, LeaseID: j.LeaseID, Seq: seq},
		strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ingest(t *testing.T, b Backend, j *queue.Job, seq int, lines ...string) bool {
	t.Helper()
	dup, err := b.Records.Ingest(ctx, batch(t, j, seq, lines...))
	if err != nil {
		t.Fatalf("ingest batch %d: %v", seq, err)
	}
	return dup
}

func keys(t *testing.T, b Backend, kind, integ string) string {
	t.Helper()
	p, err := b.Records.List(ctx, kind, jobs.ListFilter{IntegrationID: integ, Limit: jobs.MaxPageItems})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range p.Items {
		out = append(out, it.Key)
	}
	return strings.Join(out, ",")
}

func succeed(t *testing.T, b Backend, j *queue.Job) jobs.Sweep {
	t.Helper()
	_, sw, err := b.Records.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true}, jobs.RunReport{})
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

func testBatchAppliedOnce(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	for i := 0; i < 3; i++ {
		if dup := ingest(t, b, j, 1, Entity("a", "user"), Entity("b", "user")); dup != (i > 0) {
			t.Errorf("try %d: duplicate = %v", i, dup)
		}
	}
	if c, ok, err := b.Records.Applied(ctx, jobs.BatchKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: 1}); err != nil || !ok || c != (jobs.BatchCounts{Accepted: 2}) {
		t.Errorf("Applied = %+v, %v, %v; want applied, 2 accepted", c, ok, err)
	}
	if c, ok, err := b.Records.Applied(ctx, jobs.BatchKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: 2}); err != nil || ok || c != (jobs.BatchCounts{}) {
		t.Errorf("Applied(a batch never sent) = %+v, %v, %v", c, ok, err)
	}
	c, _ := b.Records.Counts(ctx, j.ID)
	if c.Records != 2 {
		t.Errorf("records counted %d, want 2", c.Records)
	}
	if got := keys(t, b, api.KindEntity, "i1"); got != "a,b" {
		t.Errorf("entities = %s", got)
	}
}

// testWritesNeedALiveLease: a batch or a log chunk under a lease that was
// lost (canceled, expired, or the job finished) stores nothing, even when
// the loss happens after the request's first look (P6 item 10).
func testWritesNeedALiveLease(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	pending := batch(t, j, 1, Entity("late", "user"))
	if _, err := b.Queue.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Records.Ingest(ctx, pending); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("ingest after cancel = %v, want ErrLeaseLost", err)
	}
	if _, err := b.Records.AppendLogs(ctx, jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: 1}, []byte("late\n")); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("logs after cancel = %v, want ErrLeaseLost", err)
	}
	if got := keys(t, b, api.KindEntity, "i1"); got != "" {
		t.Errorf("entities stored after the cancel: %s", got)
	}
	if logs, _ := b.Records.Logs(ctx, j.ID); logs != "" {
		t.Errorf("logs stored after the cancel: %q", logs)
	}
	if _, _, err := b.Records.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true}, jobs.RunReport{}); err == nil {
		t.Error("finish of a canceled job accepted")
	}
}

func testLogChunksOnce(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	for i := 0; i < 2; i++ {
		dup, err := b.Records.AppendLogs(ctx, jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: 1}, []byte("one\n"))
		if err != nil || dup != (i > 0) {
			t.Fatalf("append %d = %v, %v", i, dup, err)
		}
	}
	if _, err := b.Records.AppendLogs(ctx, jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: 2}, []byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if logs, _ := b.Records.Logs(ctx, j.ID); logs != "one\ntwo\n" {
		t.Errorf("logs = %q, want each chunk once", logs)
	}
	// A follower reads each chunk once, by cursor.
	text, cur, err := b.Records.LogsAfter(ctx, j.ID, 0)
	if err != nil || text != "one\ntwo\n" || cur == 0 {
		t.Fatalf("LogsAfter(0) = %q, %d, %v", text, cur, err)
	}
	if text, cur2, err := b.Records.LogsAfter(ctx, j.ID, cur); err != nil || text != "" || cur2 != cur {
		t.Errorf("LogsAfter(end) = %q, %d, %v; want nothing new at %d", text, cur2, err, cur)
	}
	if _, err := b.Records.AppendLogs(ctx, jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: 3}, []byte("three\n")); err != nil {
		t.Fatal(err)
	}
	if text, _, err := b.Records.LogsAfter(ctx, j.ID, cur); err != nil || text != "three\n" {
		t.Errorf("LogsAfter(cursor) after a new chunk = %q, %v; want only it", text, err)
	}
	if text, cur, err := b.Records.LogsAfter(ctx, "job_other", 0); err != nil || text != "" || cur != 0 {
		t.Errorf("LogsAfter(unknown job) = %q, %d, %v", text, cur, err)
	}
}

func testLogsCapped(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	chunk := []byte(strings.Repeat("l", 1<<20))
	for i := 1; i <= 5; i++ {
		if _, err := b.Records.AppendLogs(ctx, jobs.LogKey{JobID: j.ID, LeaseID: j.LeaseID, Seq: i}, chunk); err != nil {
			t.Fatal(err)
		}
	}
	logs, err := b.Records.Logs(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "bytes of logs dropped") || len(logs) > jobs.MaxJobLogBytes+200 {
		t.Errorf("logs of %d bytes, want capped at %d with a note", len(logs), jobs.MaxJobLogBytes)
	}
}

func testFinishSweeps(t *testing.T, b Backend) {
	j1 := lease(t, b, "i1")
	ingest(t, b, j1, 1, Entity("a", "t"), Entity("b", "t"), Entity("c", "t"))
	succeed(t, b, j1)
	// Another integration's data is never touched.
	other := lease(t, b, "i2")
	ingest(t, b, other, 1, Entity("z", "t"))
	j2 := lease(t, b, "i1")
	ingest(t, b, j2, 1, Entity("a", "t"), Entity("c", "t"))
	if sw := succeed(t, b, j2); sw.Entities != 1 {
		t.Errorf("sweep deleted %d, want 1", sw.Entities)
	}
	if got := keys(t, b, api.KindEntity, "i1"); got != "a,c" {
		t.Errorf("live entities = %s, want a,c", got)
	}
	if got := keys(t, b, api.KindEntity, "i2"); got != "z" {
		t.Errorf("other integration = %s", got)
	}
	all, _ := b.Records.List(ctx, api.KindEntity, jobs.ListFilter{IntegrationID: "i1", IncludeDeleted: true, Limit: 10})
	if len(all.Items) != 3 || all.Items[1].Key != "b" || all.Items[1].DeletedAt == nil {
		t.Errorf("b must be kept, marked deleted: %+v", all.Items)
	}
	done, err := b.Queue.Get(ctx, j2.ID)
	if err != nil || done.State != queue.StateSucceeded {
		t.Errorf("job = %v, %v", done, err)
	}
}

// testFailedFinishKeepsAll: a failed run deletes nothing.
func testFailedFinishKeepsAll(t *testing.T, b Backend) {
	j1 := lease(t, b, "i1")
	ingest(t, b, j1, 1, Entity("a", "t"), Entity("b", "t"))
	succeed(t, b, j1)
	j2 := lease(t, b, "i1")
	ingest(t, b, j2, 1, Entity("a", "t"))
	_, sw, err := b.Records.Finish(ctx, j2.ID, j2.LeaseID, queue.Result{ExitCode: 0, Error: "1 output line refused"}, jobs.RunReport{RunnerRefused: 1})
	if err != nil || sw.Entities != 0 {
		t.Fatalf("failed finish = %+v, %v; want nothing swept", sw, err)
	}
	if got := keys(t, b, api.KindEntity, "i1"); got != "a,b" {
		t.Errorf("live entities after a failed run = %s, want a,b", got)
	}
}

func testDangling(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	ingest(t, b, j, 1, Entity("a", "t"), Entity("b", "t"), relationship("ab", "a", "b"), relationship("ax", "a", "x"), relationship("yb", "y", "b"))
	succeed(t, b, j)
	n, err := b.Records.MarkDangling(ctx, "i1", j.ID)
	if err != nil || n != 2 {
		t.Fatalf("dangling = %d, %v; want 2", n, err)
	}
	if c, _ := b.Records.Counts(ctx, j.ID); c.Dangling != 2 {
		t.Errorf("job counts dangling %d, want 2", c.Dangling)
	}
	if got := keys(t, b, api.KindRelationship, "i1"); got != "ab,ax,yb" {
		t.Errorf("relationships = %s: dangling ones are kept", got)
	}
}

func testPages(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	var lines []string
	for i := 0; i < 25; i++ {
		lines = append(lines, Entity(fmt.Sprintf("k%02d", i), "t"))
	}
	ingest(t, b, j, 1, lines...)
	var got []string
	f := jobs.ListFilter{IntegrationID: "i1", Limit: 10}
	for pages := 0; ; pages++ {
		p, err := b.Records.List(ctx, api.KindEntity, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			got = append(got, it.Key)
		}
		if p.Next == "" {
			if pages != 2 {
				t.Errorf("%d pages, want 3", pages+1)
			}
			break
		}
		f.After = p.Next
	}
	if len(got) != 25 || got[0] != "k00" || got[24] != "k24" {
		t.Errorf("paged keys = %v", got)
	}
	if _, err := b.Records.List(ctx, api.KindEntity, jobs.ListFilter{IntegrationID: "i1", Limit: 10, After: "!!not a cursor"}); !errors.Is(err, jobs.ErrInvalid) {
		t.Errorf("bad cursor: %v, want ErrInvalid", err)
	}
	if _, err := b.Records.List(ctx, api.KindEntity, jobs.ListFilter{IntegrationID: "i1", Limit: jobs.MaxPageItems + 1}); !errors.Is(err, jobs.ErrInvalid) {
		t.Errorf("limit over the maximum: %v, want ErrInvalid", err)
	}
}

// testPageByteBudget: a page stops at MaxPageBytes of properties, whatever
// the limit asked for (an unbounded listing once reached 1.6 GB).
func testPageByteBudget(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	big := strings.Repeat("x", 900<<10)
	var lines []string
	for i := 0; i < 20; i++ {
		lines = append(lines, fmt.Sprintf(`{"entity":{"_key":"k%02d","_type":"t","_class":"c","blob":%q}}`, i, big))
	}
	for i := 0; i < 4; i++ {
		ingest(t, b, j, i+1, lines[i*5:(i+1)*5]...)
	}
	p, err := b.Records.List(ctx, api.KindEntity, jobs.ListFilter{IntegrationID: "i1", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) == 0 || len(p.Items) >= 20 || p.Next == "" {
		t.Fatalf("page of %d items (next %q): want it cut by bytes before 20", len(p.Items), p.Next)
	}
	size := 0
	for _, it := range p.Items {
		size += len(it.Properties)
	}
	if size > jobs.MaxPageBytes {
		t.Errorf("page holds %d bytes of properties, over %d", size, jobs.MaxPageBytes)
	}
}

func testPruneFinishedJobs(t *testing.T, b Backend) {
	old := lease(t, b, "i1")
	if _, err := b.Records.AppendLogs(ctx, jobs.LogKey{JobID: old.ID, LeaseID: old.LeaseID, Seq: 1}, []byte("old\n")); err != nil {
		t.Fatal(err)
	}
	succeed(t, b, old)
	// Queued before the cutoff, finished after it: kept.
	if _, _, err := b.Queue.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "i4", CollectorID: "col"}); err != nil {
		t.Fatal(err)
	}
	b.Advance(48 * time.Hour)
	late, err := b.Queue.Next(ctx, queue.NextRequest{CollectorID: "col"})
	if err != nil || late.IntegrationID != "i4" {
		t.Fatalf("next = %+v, %v; want the job of i4", late, err)
	}
	succeed(t, b, late)
	recent := lease(t, b, "i2")
	succeed(t, b, recent)
	active := lease(t, b, "i3")
	n, err := b.Records.PruneJobs(ctx, time.Now().Add(24*time.Hour), 100)
	if err != nil || n != 1 {
		t.Fatalf("prune = %d, %v; want the one job past retention", n, err)
	}
	if _, err := b.Queue.Get(ctx, old.ID); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("old job still there: %v", err)
	}
	if logs, _ := b.Records.Logs(ctx, old.ID); logs != "" {
		t.Errorf("old job's logs still there: %q", logs)
	}
	for _, j := range []*queue.Job{late, recent, active} {
		if _, err := b.Queue.Get(ctx, j.ID); err != nil {
			t.Errorf("job %s pruned: %v", j.ID, err)
		}
	}
}

func testCountsIncludeRunnerRefused(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	ingest(t, b, j, 1, Entity("a", "t"), "not a record")
	if _, _, err := b.Records.Finish(ctx, j.ID, j.LeaseID, queue.Result{Error: "refused"}, jobs.RunReport{RunnerRefused: 3}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Records.Counts(ctx, j.ID)
	if err != nil || c.Records != 1 || c.Refused != 4 {
		t.Errorf("counts = %+v, %v; want 1 record, 4 refused (1 by the platform, 3 by the runner)", c, err)
	}
}

// testLargeBatchLastRecordWins: a batch of many records, entities and
// relationships interleaved, is stored whole (however the backend splits
// its writes), and a key given twice in it keeps its last record.
func testLargeBatchLastRecordWins(t *testing.T, b Backend) {
	j := lease(t, b, "i1")
	var lines []string
	for i := range 1000 {
		lines = append(lines, Entity(fmt.Sprintf("e%04d", i), "user"))
		if i%3 == 0 {
			lines = append(lines, relationship(fmt.Sprintf("r%04d", i), fmt.Sprintf("e%04d", i), "e0000"))
		}
		if i == 500 { // the same keys again, each with a later record
			lines = append(lines, `{"entity":{"_key":"e0007","_type":"admin","_class":"Record","v":2}}`,
				relationship("r0003", "e0003", "e0999"))
		}
	}
	ingest(t, b, j, 1, lines...)
	if c, _ := b.Records.Counts(ctx, j.ID); c.Records != int64(len(lines)) {
		t.Errorf("records counted %d, want %d", c.Records, len(lines))
	}
	count := func(kind string) (n int, byKey map[string]api.Item) {
		byKey = map[string]api.Item{}
		after := ""
		for {
			p, err := b.Records.List(ctx, kind, jobs.ListFilter{IntegrationID: "i1", Limit: jobs.MaxPageItems, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range p.Items {
				byKey[it.Key] = it
			}
			n += len(p.Items)
			if p.Next == "" {
				return n, byKey
			}
			after = p.Next
		}
	}
	ents, e := count(api.KindEntity)
	rels, r := count(api.KindRelationship)
	if ents != 1000 || rels != 334 {
		t.Errorf("%d entities and %d relationships stored, want 1000 and 334", ents, rels)
	}
	if e["e0007"].Type != "admin" || r["r0003"].To != "e0999" {
		t.Errorf("a key given twice kept %+v and %+v, want the batch's later records", e["e0007"], r["r0003"])
	}
}

// testNextSyncRewritesEveryKey: a sync of keys stored before (some of
// them swept as deleted in between) rewrites each one with its new record
// and revives the deleted ones, among new keys and a key given twice in a
// row — enough records that a backend writing several rows a statement
// meets stored keys in many statements one after the other.
func testNextSyncRewritesEveryKey(t *testing.T, b Backend) {
	const n = 2600
	sync := func(count int, typ, to string, extra ...string) *queue.Job {
		j := lease(t, b, "i1")
		var lines []string
		for i := range count {
			lines = append(lines, Entity(fmt.Sprintf("e%04d", i), typ))
			if i%2 == 0 {
				lines = append(lines, relationship(fmt.Sprintf("r%04d", i), fmt.Sprintf("e%04d", i), to))
			}
			if i == n/2 {
				lines = append(lines, extra...)
			}
		}
		ingest(t, b, j, 1, lines...)
		succeed(t, b, j)
		return j
	}
	sync(n, "user", "e0000")
	sync(n-100, "user", "e0000") // the last 100 entities and 50 relationships swept
	last := sync(n, "admin", "e0001", Entity("new", "admin"), Entity("e0005", "admin"), Entity("e0005", "last"))
	ents, rels := map[string]api.Item{}, map[string]api.Item{}
	for kind, into := range map[string]map[string]api.Item{api.KindEntity: ents, api.KindRelationship: rels} {
		after := ""
		for {
			p, err := b.Records.List(ctx, kind, jobs.ListFilter{IntegrationID: "i1", Limit: jobs.MaxPageItems, After: after, IncludeDeleted: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range p.Items {
				into[it.Key] = it
			}
			if after = p.Next; after == "" {
				break
			}
		}
	}
	if len(ents) != n+1 || len(rels) != n/2 {
		t.Fatalf("%d entities and %d relationships stored, want %d and %d", len(ents), len(rels), n+1, n/2)
	}
	for k, it := range ents {
		want := "admin"
		if k == "e0005" {
			want = "last"
		}
		if it.Type != want || it.JobID != last.ID || it.DeletedAt != nil {
			t.Fatalf("entity %s = type %q, job %s, deleted %v; want type %q, job %s, live", k, it.Type, it.JobID, it.DeletedAt, want, last.ID)
		}
	}
	for k, it := range rels {
		if it.To != "e0001" || it.JobID != last.ID || it.DeletedAt != nil {
			t.Fatalf("relationship %s = to %q, job %s, deleted %v; want to e0001, job %s, live", k, it.To, it.JobID, it.DeletedAt, last.ID)
		}
	}
}

// A job's counts are those of its last attempt that stored records: a
// new attempt (the lease handed back, the job leased again) starts them
// over, and a line refused in an attempt that did not finish does not
// keep the one that does from being a complete sync (the finish
// succeeds).
func testCountsOfTheLastAttempt(t *testing.T, b Backend) {
	first := lease(t, b, "i1")
	ingest(t, b, first, 1, Entity("a", "user"), Entity("b", "user"), "not a record")
	if c, _ := b.Records.Counts(ctx, first.ID); c.Records != 2 || c.Refused != 1 {
		t.Fatalf("first attempt counted %+v, want 2 records, 1 refused", c)
	}
	if _, err := b.Queue.Requeue(ctx, first.ID, first.LeaseID, queue.Target{CollectorID: "col"}); err != nil {
		t.Fatal(err)
	}
	second, err := b.Queue.Next(ctx, queue.NextRequest{CollectorID: "col"})
	if err != nil || second.ID != first.ID || second.LeaseID == first.LeaseID {
		t.Fatalf("second lease = %+v, %v; want the same job under a new lease", second, err)
	}
	ingest(t, b, second, 1, Entity("a", "user"))
	ingest(t, b, second, 2, Entity("c", "user"))
	if c, _ := b.Records.Counts(ctx, second.ID); c.Records != 2 || c.Refused != 0 {
		t.Fatalf("second attempt counted %+v, want 2 records, none refused (the first attempt's not added)", c)
	}
	// A late batch of the first attempt is refused (its lease is gone).
	if _, err := b.Records.Ingest(ctx, batch(t, first, 2, Entity("late", "user"))); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("a batch of the first attempt after the second began: %v, want ErrLeaseLost", err)
	}
	succeed(t, b, second)
	if c, _ := b.Records.Counts(ctx, second.ID); c.Records != 2 || c.Refused != 0 {
		t.Errorf("finished job counted %+v, want 2 records, none refused", c)
	}
}
