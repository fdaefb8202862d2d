package postgres_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/jobs/recordstest"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/queue"
)

// Shape of a benchmark batch: what a directory sync sends.
const (
	benchEntities      = 1000
	benchRelationships = 250
)

// BenchmarkIngest ingests batches of 1,000 entities and 250
// relationships through Records.Ingest under a live lease, on SQLite (the
// baseline) and on PostgreSQL in the same run, reporting records/s and,
// for PostgreSQL, its ratio to SQLite's ("x-sqlite"). "new" sends new
// keys every batch (a first sync); "resend" the same keys every batch (a
// later sync: every row updated). The PostgreSQL server is pgtest's
// (fsync, synchronous_commit and full_page_writes off), SQLite's file
// runs synchronous=NORMAL: neither waits for the disk at commit.
func BenchmarkIngest(b *testing.B) {
	cfg := queue.DefaultConfig()
	cfg.LeaseTTL = time.Hour // no renewal needed, however long the run
	backends := []struct {
		name string
		open func(b *testing.B) (jobs.Records, queue.Queue)
	}{
		{"sqlite", func(b *testing.B) (jobs.Records, queue.Queue) {
			s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "p.db"), sqlite.Options{IntegrityKey: testKey, Queue: cfg})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s.Records(), s.Queue()
		}},
		{"postgres", func(b *testing.B) (jobs.Records, queue.Queue) {
			s, err := postgres.Open(ctx, pgtest.NewDB(b), postgres.Options{IntegrityKey: testKey, Queue: cfg})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s.Records(), s.Queue()
		}},
	}
	baseline := map[string]float64{} // SQLite's records/s by mode
	for _, be := range backends {
		for _, mode := range []string{"new", "resend", "new-4jobs"} {
			b.Run(be.name+"/"+mode, func(b *testing.B) {
				recs, q := be.open(b)
				var rate float64
				if mode == "new-4jobs" {
					rate = benchIngestJobs(b, recs, q, 4)
				} else {
					rate = benchIngest(b, recs, q, mode == "new")
				}
				b.ReportMetric(rate, "records/s")
				if be.name == "sqlite" {
					baseline[mode] = rate
				} else if base := baseline[mode]; base > 0 {
					b.ReportMetric(rate/base, "x-sqlite")
				}
			})
		}
	}
}

// leaseBench enqueues and leases a job of integ.
func leaseBench(b *testing.B, q queue.Queue, integ string) *queue.Job {
	if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: integ, CollectorID: "col"}); err != nil {
		b.Fatal(err)
	}
	j, err := q.Next(ctx, queue.NextRequest{CollectorID: "col"})
	if err != nil {
		b.Fatal(err)
	}
	return j
}

// benchIngest ingests b.N batches under one lease and returns records/s.
func benchIngest(b *testing.B, recs jobs.Records, q queue.Queue, newKeys bool) float64 {
	j := leaseBench(b, q, "bench")
	tmpl := benchBatch(b)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		batch := &jobs.Batch{Key: jobs.BatchKey{IntegrationID: j.IntegrationID, JobID: j.ID, LeaseID: j.LeaseID, Seq: i + 1},
			Records: rekey(tmpl, newKeys, i)}
		b.StartTimer()
		if dup, err := recs.Ingest(ctx, batch); err != nil || dup {
			b.Fatalf("batch %d: dup %v, %v", i+1, dup, err)
		}
	}
	return float64(len(tmpl)*b.N) / b.Elapsed().Seconds()
}

// benchIngestJobs ingests b.N batches of new keys from n jobs (of n
// integrations) at once, as n collectors uploading together, and returns
// the records/s of them all. Building the batches is timed here (under a
// millisecond of a batch's tens).
func benchIngestJobs(b *testing.B, recs jobs.Records, q queue.Queue, n int) float64 {
	leases := make([]*queue.Job, n)
	for i := range leases {
		leases[i] = leaseBench(b, q, fmt.Sprintf("bench-%d", i))
	}
	tmpl := benchBatch(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, j := range leases {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				batch := &jobs.Batch{Key: jobs.BatchKey{IntegrationID: j.IntegrationID, JobID: j.ID, LeaseID: j.LeaseID, Seq: i + 1},
					Records: rekey(tmpl, true, i)}
				if dup, err := recs.Ingest(ctx, batch); err != nil || dup {
					b.Errorf("batch %d: dup %v, %v", i+1, dup, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(len(tmpl)*b.N) / b.Elapsed().Seconds()
}

// benchBatch parses one batch: entities of about 300 bytes, and
// relationships between them.
func benchBatch(b *testing.B) []*integration.Record {
	var lines []string
	for i := range benchEntities {
		lines = append(lines, fmt.Sprintf(`{"entity":{"_key":"user-%06d","_type":"ldap_user","_class":"User","name":"User %d",`+
			`"email":"user%d@example.com","dn":"uid=user%d,ou=people,dc=example,dc=com","active":true,"groups":["staff","dev"],`+
			`"createdOn":1700000000000,"title":"Engineer","department":"Platform","manager":"uid=boss,ou=people,dc=example,dc=com"}}`, i, i, i, i))
	}
	for i := range benchRelationships {
		lines = append(lines, fmt.Sprintf(`{"relationship":{"_key":"rel-%06d","_type":"ldap_user_has_user","_class":"HAS",`+
			`"_fromEntityKey":"user-%06d","_toEntityKey":"user-%06d"}}`, i, i, (i+1)%benchEntities))
	}
	batch, _, err := jobs.ParseBatch(jobs.BatchKey{}, strings.NewReader(strings.Join(lines, "\n")))
	if err != nil || len(batch.Records) != len(lines) {
		b.Fatalf("bench batch: %d records, %v", len(batch.Records), err)
	}
	return batch.Records
}

// rekey copies the template's records, with keys of their own for batch
// i when newKeys (the properties keep the template's _key: the stores
// never read it).
func rekey(tmpl []*integration.Record, newKeys bool, i int) []*integration.Record {
	out := make([]*integration.Record, len(tmpl))
	for n, r := range tmpl {
		c := *r
		if newKeys {
			c.Key = fmt.Sprintf("b%06d-%s", i, r.Key)
			if c.Kind == integration.KindRelationship {
				c.From, c.To = fmt.Sprintf("b%06d-%s", i, r.From), fmt.Sprintf("b%06d-%s", i, r.To)
			}
		}
		out[n] = &c
	}
	return out
}

// BenchmarkIngestDirectory: recordstest.BenchDirectory on PostgreSQL,
// 100,000 users (400,000 records); platform/store/sqlite has its SQLite
// twin.
func BenchmarkIngestDirectory(b *testing.B) {
	recordstest.BenchDirectory(b, func(b *testing.B) recordstest.Backend {
		s, err := postgres.Open(ctx, pgtest.NewDB(b), postgres.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return recordstest.Backend{Records: s.Records(), Queue: s.Queue()}
	}, 100_000)
}
