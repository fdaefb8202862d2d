package jobs_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/queue"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

// fakeDirectory is a jobs.Directory over fixed schedules. It is the one
// fake here: the platform's store is not what these tests are about.
type fakeDirectory struct {
	mu        sync.Mutex
	schedules []jobs.Schedule
	members   []jobs.Member
}

var errNoIntegration = errors.New("no such integration")

func (d *fakeDirectory) Source(_ context.Context, id string) (*jobs.Source, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.schedules {
		if s.IntegrationID == id {
			return &jobs.Source{IntegrationID: id, CollectorID: s.CollectorID, Pool: s.Pool, Image: "localhost/x@sha256:00", Config: []byte(`{}`)}, nil
		}
	}
	return nil, errNoIntegration
}

func (d *fakeDirectory) CollectorHPKEKey(context.Context, string) ([]byte, error) {
	return nil, errors.New("not needed by the scheduler")
}

func (d *fakeDirectory) Collector(_ context.Context, id string) (jobs.Member, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.members {
		if m.ID == id {
			return m, nil
		}
	}
	return jobs.Member{ID: id}, nil
}

func (d *fakeDirectory) PoolMembers(_ context.Context, pool string) ([]jobs.Member, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []jobs.Member
	for _, m := range d.members {
		if m.Pool == pool {
			out = append(out, m)
		}
	}
	return out, nil
}

func (d *fakeDirectory) Schedules(context.Context) ([]jobs.Schedule, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]jobs.Schedule(nil), d.schedules...), nil
}

func (d *fakeDirectory) set(s ...jobs.Schedule) {
	d.mu.Lock()
	d.schedules = s
	d.mu.Unlock()
}

// testClock is a clock that only Advance moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newService returns a service on a real queue in a temporary SQLite file,
// both reading the clock it returns.
func newService(t *testing.T, cfg jobs.Config, dir jobs.Directory) (*jobs.Service, queue.Queue, *testClock) {
	t.Helper()
	clock := newTestClock()
	q, err := qsqlite.Open(filepath.Join(t.TempDir(), "queue.db"), queue.DefaultConfig(), qsqlite.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return jobs.New(cfg, q, nil, dir, key, log, nil, jobs.WithClock(clock.Now)), q, clock
}

// runScheduler runs the scheduler on its ticker until the test ends.
func runScheduler(t *testing.T, s *jobs.Service) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.RunScheduler(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// stepper drives a scheduler by hand: each step moves the clock by one
// tick and has the scheduler look once, as RunScheduler does on a tick.
type stepper struct {
	look  func(context.Context)
	clock *testClock
	tick  time.Duration
}

func newStepper(s *jobs.Service, clock *testClock, tick time.Duration) *stepper {
	st := &stepper{look: s.SchedulerStep(), clock: clock, tick: tick}
	st.look(context.Background()) // RunScheduler looks at once, too
	return st
}

// run lets d pass on the clock, one tick at a time.
func (st *stepper) run(d time.Duration) {
	for end := st.clock.Now().Add(d); st.clock.Now().Before(end); {
		st.clock.Advance(st.tick)
		st.look(context.Background())
	}
}

// untilQueued steps until the integration has a queued job other than the
// ones in seen, and fails if none comes within the given clock time.
func (st *stepper) untilQueued(t *testing.T, q queue.Queue, id string, within time.Duration, seen map[string]bool) *queue.Job {
	t.Helper()
	for end := st.clock.Now().Add(within); st.clock.Now().Before(end); {
		st.clock.Advance(st.tick)
		st.look(context.Background())
		if j := queuedJob(t, q, id, seen); j != nil {
			return j
		}
	}
	t.Fatalf("no new job for %s within %v", id, within)
	return nil
}

func integrationJobs(t *testing.T, q queue.Queue, id string) []*queue.Job {
	t.Helper()
	list, err := q.List(context.Background(), queue.Filter{IntegrationID: id})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// queuedJob returns a queued job of the integration other than the ones in
// seen, or nil.
func queuedJob(t *testing.T, q queue.Queue, id string, seen map[string]bool) *queue.Job {
	t.Helper()
	for _, j := range integrationJobs(t, q, id) {
		if j.State == queue.StateQueued && !seen[j.ID] {
			return j
		}
	}
	return nil
}

// onlyJob checks the integration has exactly the job want, in state st.
func onlyJob(t *testing.T, q queue.Queue, id string, want *queue.Job, st queue.State) {
	t.Helper()
	list := integrationJobs(t, q, id)
	if len(list) != 1 || list[0].ID != want.ID || list[0].State != st {
		var got []string
		for _, j := range list {
			got = append(got, j.ID+":"+string(j.State))
		}
		t.Fatalf("jobs of %s = %v, want only %s:%s", id, got, want.ID, st)
	}
}

func TestSchedulerEnqueuesEachPeriodNeverTwice(t *testing.T) {
	const period = 100 * time.Millisecond
	cfg := jobs.Config{EnvelopeTTL: time.Minute, SchedulerTick: 5 * time.Millisecond, Jitter: 0.2}
	dir := &fakeDirectory{}
	dir.set(
		jobs.Schedule{IntegrationID: "int_due", CollectorID: "col_a", Interval: period},
		jobs.Schedule{IntegrationID: "int_unassigned", Interval: period},
		jobs.Schedule{IntegrationID: "int_no_period", CollectorID: "col_a"},
	)
	s, q, clock := newService(t, cfg, dir)
	ctx := context.Background()
	start := clock.Now()
	sched := newStepper(s, clock, cfg.SchedulerTick)
	// What the console shows as the next run: the scheduler's own plan.
	if next := s.NextRun("int_due"); next.Before(start) || next.After(start.Add(period)) {
		t.Errorf("NextRun after the first look = %v, want within a period of %v", next, start)
	}
	for _, id := range []string{"int_unassigned", "int_no_period", "int_unknown"} {
		if next := s.NextRun(id); !next.IsZero() {
			t.Errorf("NextRun(%s) = %v, want none", id, next)
		}
	}

	// The first run comes within a period of first sight (spread, not at once
	// for every integration).
	first := sched.untilQueued(t, q, "int_due", 2*period, nil)
	if next, lo, hi := s.NextRun("int_due"), first.CreatedAt.Add(period*8/10), first.CreatedAt.Add(period*12/10); next.Before(lo) || next.After(hi) {
		t.Errorf("NextRun after a run = %v, want a period ± 20%% after %v", next, first.CreatedAt)
	}
	if first.RequestedBy != queue.RequestedByScheduler || first.CollectorID != "col_a" {
		t.Errorf("scheduled job = %+v", first)
	}
	if d := first.CreatedAt.Sub(start); d > period+cfg.SchedulerTick {
		t.Errorf("first run after %v, want within one period (%v) and a tick", d, period)
	}

	// Several periods pass while it is queued, then leased, then running:
	// never a second job.
	sched.run(4 * period)
	onlyJob(t, q, "int_due", first, queue.StateQueued)
	leased, err := q.Next(ctx, queue.NextRequest{CollectorID: "col_a"})
	if err != nil || leased.ID != first.ID {
		t.Fatalf("next = %+v, %v", leased, err)
	}
	sched.run(3 * period)
	onlyJob(t, q, "int_due", first, queue.StateLeased)
	if _, err := q.MarkRunning(ctx, leased.ID, leased.LeaseID); err != nil {
		t.Fatal(err)
	}
	sched.run(3 * period)
	onlyJob(t, q, "int_due", first, queue.StateRunning)
	if _, err := q.Finish(ctx, leased.ID, leased.LeaseID, queue.Result{Succeeded: true}); err != nil {
		t.Fatal(err)
	}

	// Finished at once, each later job comes one jittered period after the
	// one before. The gaps are whole ticks of the clock: 1 ms ticks give the
	// ±20 ms of jitter some 40 values.
	sched.tick = time.Millisecond
	minGap := time.Duration(float64(period)*(1-cfg.Jitter)) - 2*time.Millisecond
	// No job may come sooner than minGap after the one before, so the clock
	// skips most of that in one go: a job due within the skip would be
	// enqueued at the first look after it, too soon after the one before.
	skip := minGap - 5*sched.tick
	seen := map[string]bool{first.ID: true}
	var created []time.Time
	for range 5 {
		j := sched.untilQueued(t, q, "int_due", 2*period, seen)
		seen[j.ID] = true
		created = append(created, j.CreatedAt)
		if j.RequestedBy != queue.RequestedByScheduler {
			t.Errorf("job %s requested by %q", j.ID, j.RequestedBy)
		}
		l, err := q.Next(ctx, queue.NextRequest{CollectorID: "col_a"})
		if err != nil || l.ID != j.ID {
			t.Fatalf("next = %+v, %v", l, err)
		}
		if _, err := q.Finish(ctx, l.ID, l.LeaseID, queue.Result{Succeeded: true}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(skip)
	}
	gaps := map[time.Duration]bool{}
	for i := 1; i < len(created); i++ {
		gap := created[i].Sub(created[i-1])
		gaps[gap.Round(time.Millisecond)] = true
		if gap < minGap {
			t.Errorf("jobs %d and %d enqueued %v apart, want at least %v (period %v, jitter %v)", i-1, i, gap, minGap, period, cfg.Jitter)
		}
	}
	if len(gaps) < 2 {
		t.Errorf("gaps between runs all equal (%v): no jitter", gaps)
	}
	for _, id := range []string{"int_unassigned", "int_no_period"} {
		if list := integrationJobs(t, q, id); len(list) != 0 {
			t.Errorf("%s got %d jobs, want none", id, len(list))
		}
	}
}

func TestSchedulerStopsForRemovedOrUnassigned(t *testing.T) {
	const period = 50 * time.Millisecond
	dir := &fakeDirectory{}
	dir.set(jobs.Schedule{IntegrationID: "int_a", CollectorID: "col_a", Interval: period})
	cfg := jobs.Config{EnvelopeTTL: time.Minute, SchedulerTick: 5 * time.Millisecond, Jitter: 0.1}
	s, q, clock := newService(t, cfg, dir)
	sched := newStepper(s, clock, cfg.SchedulerTick)
	j := sched.untilQueued(t, q, "int_a", 2*period, nil)
	if _, err := q.Cancel(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	// Unassigned: no more runs, even though nothing is queued.
	dir.set(jobs.Schedule{IntegrationID: "int_a", Interval: period})
	sched.run(6 * period)
	if n := len(integrationJobs(t, q, "int_a")); n != 1 {
		t.Errorf("unassigned integration has %d jobs, want the 1 from before", n)
	}
	// Removed: the same.
	dir.set()
	sched.run(4 * period)
	if n := len(integrationJobs(t, q, "int_a")); n != 1 {
		t.Errorf("removed integration has %d jobs, want 1", n)
	}
}

// TestRunSchedulerLooksOnItsTicker: RunScheduler is the stepped scheduler
// of the tests above on a real ticker, and stops when ctx ends (the
// cleanup waits for it). The clock is moved a period at a time until the
// job comes: the ticker's looks are not synchronized with the test.
func TestRunSchedulerLooksOnItsTicker(t *testing.T) {
	const period = time.Minute
	dir := &fakeDirectory{}
	dir.set(jobs.Schedule{IntegrationID: "int_a", CollectorID: "col_a", Interval: period})
	s, q, clock := newService(t, jobs.Config{EnvelopeTTL: time.Minute, SchedulerTick: time.Millisecond, Jitter: 0.1}, dir)
	runScheduler(t, s)
	const within = 10 * time.Second
	for deadline := time.Now().Add(within); ; time.Sleep(5 * time.Millisecond) {
		if j := queuedJob(t, q, "int_a", nil); j != nil {
			if j.RequestedBy != queue.RequestedByScheduler || j.CollectorID != "col_a" {
				t.Errorf("scheduled job = %+v", j)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no job for int_a within %v", within)
		}
		clock.Advance(period)
	}
}

// flakyDirectory fails Source once for one integration, as a store under
// a transient error would, then answers.
type flakyDirectory struct {
	fakeDirectory
	key   []byte
	fails int
}

func (d *flakyDirectory) Source(ctx context.Context, id string) (*jobs.Source, error) {
	d.mu.Lock()
	if d.fails > 0 {
		d.fails--
		d.mu.Unlock()
		return nil, errors.New("database is locked")
	}
	d.mu.Unlock()
	return d.fakeDirectory.Source(ctx, id)
}

func (d *flakyDirectory) CollectorHPKEKey(context.Context, string) ([]byte, error) { return d.key, nil }

// TestTransientSealErrorRequeues is P6 item 11: a store error while
// sealing returns the job to the queue, uncounted, and the call fails as
// retryable; the next call gets the job. It used to fail the job for good.
func TestTransientSealErrorRequeues(t *testing.T) {
	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := &flakyDirectory{key: hk.PublicKey(), fails: 1}
	dir.set(jobs.Schedule{IntegrationID: "int_a", CollectorID: "col_a"})
	s, q, _ := newService(t, jobs.DefaultConfig(), dir)
	ctx := context.Background()
	j, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int_a", CollectorID: "col_a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctx, "col_a", api.NextRequest{WaitSeconds: 1}); !errors.Is(err, jobs.ErrUnavailable) {
		t.Fatalf("next with the store failing = %v, want ErrUnavailable", err)
	}
	got, err := q.Get(ctx, j.ID)
	if err != nil || got.State != queue.StateQueued || got.Attempt != 1 {
		t.Fatalf("job after the failed seal = %+v, %v; want queued on attempt 1", got, err)
	}
	l, err := s.Next(ctx, "col_a", api.NextRequest{WaitSeconds: 1})
	if err != nil || l == nil || l.JobID != j.ID || l.Attempt != 1 {
		t.Fatalf("next after = %+v, %v; want the job on attempt 1", l, err)
	}
}

// TestJobOfMovedIntegrationGoesToItsCollector: a job leased by a collector
// its integration left is moved, not sealed to it (P6 item 1).
func TestJobOfMovedIntegrationGoesToItsCollector(t *testing.T) {
	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := &flakyDirectory{key: hk.PublicKey()}
	dir.set(jobs.Schedule{IntegrationID: "int_a", CollectorID: "col_b"})
	s, q, _ := newService(t, jobs.DefaultConfig(), dir)
	ctx := context.Background()
	j, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int_a", CollectorID: "col_a"})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.Next(ctx, "col_a", api.NextRequest{WaitSeconds: 0}); err != nil || l != nil {
		t.Fatalf("col_a was handed %+v, %v", l, err)
	}
	l, err := s.Next(ctx, "col_b", api.NextRequest{WaitSeconds: 1})
	if err != nil || l == nil || l.JobID != j.ID {
		t.Fatalf("col_b next = %+v, %v; want the moved job", l, err)
	}
}
