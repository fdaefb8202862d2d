package postgres_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/postgres"
	"github.com/collectorhq/collector/queue/queuetest"
)

// One PostgreSQL server for the test binary, one database per test.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t testing.TB, url string, cfg queue.Config, opts ...postgres.Option) *postgres.Queue {
	t.Helper()
	q, err := postgres.Open(context.Background(), url, cfg, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// suiteBackend opens a queue on a fresh database with a test clock and a
// park signal.
func suiteBackend(t *testing.T, cfg queue.Config) queuetest.Backend {
	t.Helper()
	clock := &queuetest.Clock{}
	hook, parked := queuetest.ParkSignal()
	q := open(t, pgtest.NewDB(t), cfg, postgres.WithClock(clock.Now), postgres.WithParkHook(hook))
	// What the platform's store runs as it deletes a collector.
	gone := func(ctx context.Context, collectorID, reason string) (canceled, moved int, err error) {
		err = q.Update(ctx, func(t *postgres.Tx) error {
			canceled, moved, err = t.CollectorGone(ctx, collectorID, reason)
			return err
		})
		return canceled, moved, err
	}
	return queuetest.Backend{Queue: q, Advance: clock.Advance, Parked: parked, CollectorGone: gone}
}

func TestConformance(t *testing.T) {
	queuetest.Run(t, suiteBackend)
}

// Two processes (two pools, two listeners) on one database: a Next
// waiting on B is woken by an Enqueue on A through LISTEN/NOTIFY, well
// before its fallback poll.
func TestCrossProcessWake(t *testing.T) {
	_, a, b, parked := twoProcesses(t)
	ctx := context.Background()
	for _, c := range []struct{ name, collector, pool string }{{"collector", "col-a", ""}, {"pool", "col-b", "dc1"}} {
		t.Run(c.name, func(t *testing.T) {
			res := parkNext(b, parked, queue.NextRequest{CollectorID: c.collector, Pool: c.pool, Wait: 20 * time.Second})
			start := time.Now()
			req := queue.EnqueueRequest{IntegrationID: "int-" + c.name}
			if c.pool != "" {
				req.Pool = c.pool
			} else {
				req.CollectorID = c.collector
			}
			j, _, err := a.Enqueue(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			r := <-res
			if r.err != nil {
				t.Fatalf("b.Next: %v", r.err)
			}
			if r.job.ID != j.ID {
				t.Fatalf("b.Next = %s, want %s", r.job.ID, j.ID)
			}
			if d := r.at.Sub(start); d >= 500*time.Millisecond {
				t.Fatalf("b.Next returned %v after a's Enqueue, want < 500ms (LISTEN/NOTIFY)", d)
			} else {
				t.Logf("picked up across processes in %v", d)
			}
		})
	}
}

// twoProcesses opens two queues (two pools, two listeners) on a fresh
// database, as two platform processes would, with a fallback poll of 10 s
// (only a notification can be in time); parked names each collector whose
// Next parks on b.
func twoProcesses(t *testing.T) (url string, a, b *postgres.Queue, parked <-chan string) {
	t.Helper()
	url = pgtest.NewDB(t)
	cfg := queuetest.Config()
	cfg.PollInterval = 10 * time.Second
	a = open(t, url, cfg)
	hook, parked := queuetest.ParkSignal()
	b = open(t, url, cfg, postgres.WithParkHook(hook))
	return url, a, b, parked
}

// nextResult is what a Next returned, and when.
type nextResult struct {
	job *queue.Job
	at  time.Time
	err error
}

// parkNext calls q.Next(req) in the background and returns once it has
// parked (parked, from q's park hook, names its collector); its result
// comes on the channel.
func parkNext(q *postgres.Queue, parked <-chan string, req queue.NextRequest) <-chan nextResult {
	res := make(chan nextResult, 1)
	go func() {
		j, err := q.Next(context.Background(), req)
		res <- nextResult{j, time.Now(), err}
	}()
	for got := <-parked; got != req.CollectorID; got = <-parked {
	}
	return res
}

// Two processes starting together on an empty database migrate once.
func TestConcurrentMigration(t *testing.T) {
	url := pgtest.NewDB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			q, err := postgres.Open(context.Background(), url, queue.DefaultConfig())
			if err == nil {
				q.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, versions int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT version) FROM queue_migrations`).Scan(&n, &versions); err != nil {
		t.Fatal(err)
	}
	if n != versions || n == 0 {
		t.Fatalf("queue_migrations holds %d rows for %d versions, want each once", n, versions)
	}
}

// Dedupe, single leasing and expiry hold across processes: two queues
// race on one database.
func TestTwoProcessesOneDatabase(t *testing.T) {
	url := pgtest.NewDB(t)
	cfg := queuetest.Config()
	cfg.PollInterval = 50 * time.Millisecond
	clock := &queuetest.Clock{} // one machine: both read the same time
	a := open(t, url, cfg, postgres.WithClock(clock.Now))
	b := open(t, url, cfg, postgres.WithClock(clock.Now))
	ctx := context.Background()

	var wg sync.WaitGroup
	created := make(chan string, 40)
	for i := range 40 {
		q := a
		if i%2 == 1 {
			q = b
		}
		wg.Go(func() {
			j, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-1", CollectorID: "col-a"})
			if err != nil {
				t.Errorf("Enqueue: %v", err)
				return
			}
			if !existed {
				created <- j.ID
			}
		})
	}
	wg.Wait()
	close(created)
	if n := len(created); n != 1 {
		t.Fatalf("%d jobs created across two processes, want 1", n)
	}

	// 20 jobs, 8 runners in two processes: each job leased once.
	for i := range 20 {
		if _, _, err := a.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "many-" + string(rune('a'+i)), CollectorID: "col-b"}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	for r := range 8 {
		q := a
		if r%2 == 1 {
			q = b
		}
		wg.Go(func() {
			for {
				j, err := q.Next(ctx, queue.NextRequest{CollectorID: "col-b"})
				if errors.Is(err, queue.ErrNoJob) {
					return
				}
				if err != nil {
					t.Errorf("Next: %v", err)
					return
				}
				mu.Lock()
				if seen[j.ID] {
					t.Errorf("job %s leased twice", j.ID)
				}
				seen[j.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 20 {
		t.Fatalf("%d jobs leased, want 20", len(seen))
	}

	// Both sweep at once: every expired lease is counted once.
	clock.Advance(cfg.LeaseTTL + time.Millisecond)
	var total int
	var tmu sync.Mutex
	for _, q := range []*postgres.Queue{a, b, a, b} {
		wg.Go(func() {
			n, err := q.ExpireLeases(ctx)
			if err != nil {
				t.Errorf("ExpireLeases: %v", err)
			}
			tmu.Lock()
			total += n
			tmu.Unlock()
		})
	}
	wg.Wait()
	if total != 20 {
		t.Fatalf("expired %d leases in all, want 20", total)
	}
	l, err := b.Next(ctx, queue.NextRequest{CollectorID: "col-b"})
	if err != nil || l.Attempt != 2 {
		t.Fatalf("Next after expiry = %+v, %v; want a job on attempt 2", l, err)
	}
}

func TestOperationsAfterClose(t *testing.T) {
	q, err := postgres.Open(context.Background(), pgtest.NewDB(t), queue.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	q.Close()
	ctx := context.Background()
	if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "i", CollectorID: "c"}); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
	}
	if _, err := q.Next(ctx, queue.NextRequest{CollectorID: "c"}); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Next after Close = %v, want ErrClosed", err)
	}
	if _, err := q.Get(ctx, "job_x"); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}

func TestOpenRejectsBadInput(t *testing.T) {
	if _, err := postgres.New(context.Background(), nil, queue.DefaultConfig()); err == nil {
		t.Error("New(nil pool) succeeded")
	}
	cfg := queue.DefaultConfig()
	cfg.LeaseTTL = 0
	_, err := postgres.Open(context.Background(), pgtest.NewDB(t), cfg)
	var ce *queue.ConfigError
	if !errors.As(err, &ce) || ce.Field != "LeaseTTL" {
		t.Errorf("Open with LeaseTTL 0 = %v, want a ConfigError on LeaseTTL", err)
	}
}
