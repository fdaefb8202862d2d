package platform_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/platformtest"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/queue"
)

// ingestBatch is the records per upload in BenchmarkIngestHTTP, as the
// runner batches them.
const ingestBatch = 5000

// BenchmarkIngestHTTP sends BENCH_INGEST_RECORDS (1,000,000) entities of one
// job through the HTTP API (UploadRecords, batches of 5,000, one after the
// other) into the database of a `platform serve` process, and reports
// records/s and the server's peak RSS (VmHWM of its own process, so the
// load generator's memory is not counted): sqlite into the data
// directory's file, postgres into a PostgreSQL the benchmark starts
// (internal/pgtest). The baseline, in the same run, is the same batches
// through jobs.Records.Ingest on a store of the same backend opened the
// way the server opens it (no HTTP, TLS, auth or lease checks);
// http/direct is the share of the direct rate the API keeps. Run it once
// per measure:
//
//	go test -run '^$' -bench BenchmarkIngestHTTP -benchtime 1x ./platform/
func BenchmarkIngestHTTP(b *testing.B) {
	n := envInt("BENCH_INGEST_RECORDS", 1_000_000)
	b.Run("sqlite", func(b *testing.B) {
		benchIngestHTTP(b, n, "", func(b *testing.B) (jobs.Records, queue.Queue) {
			cfg := platform.DefaultConfig()
			cfg.DataDir = filepath.Join(b.TempDir(), "direct")
			cfg.Queue.LeaseTTL = time.Hour
			_, st := platformtest.OpenStore(b, cfg)
			b.Cleanup(func() { st.Close() })
			return st.Records(), st.Queue()
		})
	})
	b.Run("postgres", func(b *testing.B) {
		pg := startPostgres(b)
		db, err := pg.CreateDB()
		if err != nil {
			b.Fatal(err)
		}
		benchIngestHTTP(b, n, pg.URL(db), func(b *testing.B) (jobs.Records, queue.Queue) {
			db, err := pg.CreateDB()
			if err != nil {
				b.Fatal(err)
			}
			cfg := platform.DefaultConfig()
			cfg.Queue.LeaseTTL = time.Hour
			st, err := postgres.Open(ctx, pg.URL(db), postgres.Options{IntegrityKey: make([]byte, 32), Queue: cfg.QueueConfig()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st.Records(), st.Queue()
		})
	})
}

// startPostgres starts a PostgreSQL server for the benchmark (skipped,
// or failed under CI=true, when PostgreSQL is missing).
func startPostgres(b *testing.B) *pgtest.Server {
	b.Helper()
	pgtest.Need(b)
	pg, err := pgtest.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pg.Stop)
	return pg
}

// benchIngestHTTP is BenchmarkIngestHTTP on database ("" for SQLite),
// with openDirect opening the baseline's store.
func benchIngestHTTP(b *testing.B, n int, database string, openDirect func(*testing.B) (jobs.Records, queue.Queue)) {
	srv := startPlatformServeOn(b, "", database, "--lease-ttl", "10m")
	c := srv.enroll(b, "bench")
	var batch bytes.Buffer
	var direct, viaHTTP, serverCPU time.Duration
	var pg pgtest.Usage
	round := 0
	for b.Loop() {
		round++
		recs, q := openDirect(b)
		direct += ingestDirect(b, recs, q, n, &batch)
		in := newJobIntegration(b, srv.Env, fmt.Sprintf("ldap-%d", round), c.ID)
		// What the server and PostgreSQL spend: the whole job (lease,
		// uploads, finish), per record.
		cpu0, pg0 := procCPU(srv.pid), pgUsage(b, database)
		viaHTTP += ingestHTTP(b, srv.Env, c, in.ID, n, &batch)
		serverCPU += procCPU(srv.pid) - cpu0
		pg = pg.Add(pgUsage(b, database).Sub(pg0))
	}
	rounds := float64(round)
	records := float64(n) * rounds
	httpRate := records / viaHTTP.Seconds()
	directRate := float64(n) * rounds / direct.Seconds()
	b.ReportMetric(httpRate, "records/s")
	b.ReportMetric(directRate, "direct-records/s")
	b.ReportMetric(httpRate/directRate, "http/direct")
	b.ReportMetric(float64(procStatusKiB(b, srv.pid, "VmHWM"))/1024, "server-peak-RSS-MiB")
	b.ReportMetric(float64(serverCPU.Nanoseconds())/records, "server-cpu-ns/record")
	if database != "" {
		b.ReportMetric(pg.ExecMs*1e6/records, "pg-ns/record")
		b.ReportMetric(float64(pg.Statements)*1000/records, "stmts/1k-records")
		b.ReportMetric(float64(pg.WALBytes)/records, "wal-B/record")
	}
}

// ingestDirect ingests n entities in batches straight into a new store
// and returns the time it took.
func ingestDirect(b *testing.B, recs jobs.Records, q queue.Queue, n int, buf *bytes.Buffer) time.Duration {
	b.Helper()
	ctx := context.Background()
	if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int_direct", CollectorID: "col_direct"}); err != nil {
		b.Fatal(err)
	}
	job, err := q.Next(ctx, queue.NextRequest{CollectorID: "col_direct"})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for seq, first := 1, 0; first < n; seq, first = seq+1, first+ingestBatch {
		count := min(ingestBatch, n-first)
		fillBatch(buf, first, count)
		batch, res, err := jobs.ParseBatch(jobs.BatchKey{IntegrationID: "int_direct", JobID: job.ID, LeaseID: job.LeaseID, Seq: seq}, buf)
		if err != nil || res.Accepted != count {
			b.Fatalf("direct batch %d = %+v, %v", seq, res, err)
		}
		if _, err := recs.Ingest(ctx, batch); err != nil {
			b.Fatalf("direct batch %d: %v", seq, err)
		}
	}
	return time.Since(start)
}

// ingestHTTP runs one job of the integration whose records are n entities
// and returns the time from the first upload to the last answer.
func ingestHTTP(b *testing.B, e *platformtest.Env, c *platformtest.Collector, integrationID string, n int, buf *bytes.Buffer) time.Duration {
	b.Helper()
	l := runAndLease(b, e, c, integrationID)
	if err := c.Client.MarkRunning(ctx, l.JobID, l.LeaseID); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for seq, first := 1, 0; first < n; seq, first = seq+1, first+ingestBatch {
		count := min(ingestBatch, n-first)
		fillBatch(buf, first, count)
		res, err := c.Client.UploadRecords(ctx, l.JobID, l.LeaseID, seq, buf.Bytes())
		if err != nil || res.Accepted != count {
			b.Fatalf("batch %d = %+v, %v", seq, res, err)
		}
	}
	took := time.Since(start)
	if err := c.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, Records: int64(n)}); err != nil {
		b.Fatal(err)
	}
	if j := showJob(b, e, l.JobID); j.State != api.JobSucceeded || j.Records != int64(n) {
		b.Fatalf("job after ingest = %+v, want succeeded with %d records", j, n)
	}
	return took
}

// fillBatch writes count entities, numbered from first, as NDJSON: about
// 190 bytes a record, like a directory user.
func fillBatch(buf *bytes.Buffer, first, count int) {
	buf.Reset()
	var line []byte
	for i := first; i < first+count; i++ {
		line = append(line[:0], `{"entity":{"_key":"user-`...)
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, `","_type":"ldap_user","_class":"User","name":"User `...)
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, `","email":"user`...)
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, `@example.com","active":true,"groups":["staff","vpn"],"uid":`...)
		line = strconv.AppendInt(line, int64(10000+i), 10)
		line = append(line, "}}\n"...)
		buf.Write(line)
	}
}

// BenchmarkPickupLatency measures the time from "run now" (the admin API
// call) to the return of a runner's long poll that was already waiting, over
// BENCH_PICKUP_ITERATIONS (200) jobs, each finished before the next. The
// baseline, in the same run, is the round trip of the admin call alone.
// "sqlite" is one platform; "replicas" two on one PostgreSQL, the call
// made at one and the long poll waiting at the other (the wake-up crosses
// processes by LISTEN/NOTIFY).
func BenchmarkPickupLatency(b *testing.B) {
	iters := envInt("BENCH_PICKUP_ITERATIONS", 200)
	b.Run("sqlite", func(b *testing.B) {
		e := platformtest.Start(b)
		c := e.EnrollNew(b, "bench")
		benchPickup(b, iters, e, e, c)
	})
	b.Run("replicas", func(b *testing.B) {
		pg := startPostgres(b)
		db, err := pg.CreateDB()
		if err != nil {
			b.Fatal(err)
		}
		a := platformtest.Start(b, func(cfg *platform.Config) { cfg.Database = pg.URL(db) })
		r := platformtest.StartReplica(b, a)
		c := a.EnrollNew(b, "bench")
		// The collector's calls go to the replica.
		c.Client = api.NewCollectorClient(r.URL, c.ID, c.Key, "", r.HTTP)
		c.Client.SetAudience(c.Enrolled.Audience)
		benchPickup(b, iters, a, r, c)
	})
}

// benchPickup runs BenchmarkPickupLatency's loop: "run now" at admin, the
// long poll of c at poll (which may be the same platform).
func benchPickup(b *testing.B, iters int, admin, poll *platformtest.Env, c *platformtest.Collector) {
	in := newJobIntegration(b, admin, "ldap", c.ID)
	if _, err := c.Client.AccessToken(ctx); err != nil {
		b.Fatal(err)
	}
	waiting := poll.Backends.Queue.(interface{ Waiting(string) int })
	type polled struct {
		l   *api.Lease
		err error
		at  time.Time
	}
	var pickup, call []time.Duration
	for b.Loop() {
		for range iters {
			got := make(chan polled, 1)
			go func() {
				l, err := c.Client.Next(ctx, api.NextRequest{WaitSeconds: 25})
				got <- polled{l, err, time.Now()}
			}()
			// Wait until the poll is parked in the queue (a wake, not a race).
			for deadline := time.Now().Add(5 * time.Second); waiting.Waiting(c.ID) == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("the long poll did not reach the queue within 5 s")
				}
			}
			t0 := time.Now()
			job, err := admin.Admin.RunIntegration(ctx, in.ID)
			call = append(call, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			r := <-got
			if r.err != nil || r.l == nil || r.l.JobID != job.ID {
				b.Fatalf("next = %+v, %v; want job %s", r.l, r.err, job.ID)
			}
			pickup = append(pickup, r.at.Sub(t0))
			if err := c.Client.Finish(ctx, r.l.JobID, api.FinishRequest{LeaseID: r.l.LeaseID}); err != nil {
				b.Fatal(err)
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(pickup, .50)), "p50-ms")
	b.ReportMetric(ms(percentile(pickup, .99)), "p99-ms")
	b.ReportMetric(ms(percentile(pickup, 1)), "max-ms")
	b.ReportMetric(ms(percentile(call, .50)), "run-call-p50-ms")
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// servedPlatform is a `platform serve` process with clients for it.
type servedPlatform struct {
	*platformtest.Env // URL, DataDir, HTTP and Admin; Server and Store are nil
	pid               int
}

// startPlatformServe builds cmd/platform and runs `platform serve` in its
// own process on dataDir ("" = a fresh one), until the test ends.
func startPlatformServe(tb testing.TB, dataDir string, args ...string) *servedPlatform {
	tb.Helper()
	return startPlatformServeOn(tb, dataDir, "", args...)
}

// startPlatformServeOn is startPlatformServe on database (a postgres://
// URL; "" for the data directory's SQLite file).
func startPlatformServeOn(tb testing.TB, dataDir, database string, args ...string) *servedPlatform {
	tb.Helper()
	return startServe(tb, serveOptions{dataDir: dataDir, database: database}, args...)
}

// serveOptions are startServe's: the data directory ("" = a fresh one),
// the database ("" = its SQLite file), and whether to leave out the admin
// (a second replica on a database that has one).
type serveOptions struct {
	dataDir, database string
	noAdmin           bool
}

func startServe(tb testing.TB, o serveOptions, args ...string) *servedPlatform {
	tb.Helper()
	dataDir, database := o.dataDir, o.database
	dbEnv := append(os.Environ(), env.PlatformDatabase+"="+database)
	dir := tb.TempDir()
	bin := filepath.Join(dir, "platform")
	build := exec.Command("go", "build", "-tags", "containers_image_openpgp", "-o", bin, "github.com/collectorhq/collector/cmd/platform")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build platform: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	// A policy, as every platform that enrolls collectors has one (this
	// one accepts no image: nothing here pulls).
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"reject"}]}`), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--log-level", "warn", "serve", "--listen", addr, "--data-dir", dataDir, "--image-policy", policy}, args...)...)
	cmd.Env = dbEnv
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if tb.Failed() {
			tb.Logf("platform log:\n%s", logs.String())
		}
	})
	e := &platformtest.Env{URL: "https://" + addr, DataDir: dataDir}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("platform did not come up:\n%s", logs.String())
		}
		tc, err := api.CATLSConfig(filepath.Join(dataDir, platform.CACertFile))
		if err != nil {
			continue
		}
		e.HTTP = api.HTTPClient(tc)
		if resp, err := e.HTTP.Get(e.URL + api.PathHealthz); err == nil {
			resp.Body.Close()
			break
		}
	}
	if o.noAdmin {
		return &servedPlatform{Env: e, pid: cmd.Process.Pid}
	}
	// An admin and its API token, through the host-side command (the way
	// automation gets one).
	create := exec.Command(bin, "users", "create", "--data-dir", dataDir, "--login", "bench-admin", "--role", "admin", "--token", "bench")
	create.Env = dbEnv
	out, err := create.CombinedOutput()
	if err != nil {
		tb.Fatalf("platform users create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	e.AdminToken = strings.TrimSpace(lines[len(lines)-1])
	e.Admin = api.NewAdminClient(e.URL, e.AdminToken, e.HTTP)
	return &servedPlatform{Env: e, pid: cmd.Process.Pid}
}

// enroll creates and enrolls a collector, as platformtest.Env.EnrollNew
// does for an in-process server.
func (p *servedPlatform) enroll(tb testing.TB, name string) *platformtest.Collector {
	tb.Helper()
	g, err := p.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: name})
	if err != nil {
		tb.Fatalf("create collector: %v", err)
	}
	key, hk := platformtest.NewKeys(tb)
	c := &platformtest.Collector{ID: g.Collector.ID, Key: key, HPKE: hk}
	c.Client = api.NewCollectorClient(p.URL, c.ID, key, "", p.HTTP)
	c.Enrolled, err = c.Client.Enroll(ctx, api.EnrollRequest{CollectorID: c.ID, Token: g.EnrollmentToken,
		IdentityPublicKey: key.Public().(ed25519.PublicKey), HPKEPublicKey: hk.PublicKey()})
	if err != nil {
		tb.Fatalf("enroll: %v", err)
	}
	c.Client.SetAudience(c.Enrolled.Audience)
	return c
}

// procStatusKiB reads a "kB" field of /proc/<pid>/status, e.g. VmHWM.
func procStatusKiB(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("%s: %q", field, line)
			}
			return n
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
