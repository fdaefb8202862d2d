package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/queuetest"
	"github.com/collectorhq/collector/queue/sqlite"
)

// simShape is a pool simulation: integrations with their periods, run
// times and true peaks, run by a pool of equal collectors on the queue's
// clock, as their runners would: each tick the scheduler enqueues what is
// due, finished jobs report their peaks, and every member asks for work
// (in a random order, in passes until a pass leases nothing).
type simShape struct {
	integrations, collectors int
	hours                    float64
	tick                     time.Duration
	capacity                 queue.Capacity
}

type simResult struct {
	leases     []int // per collector
	misfits    int   // leases where the predicted use went past the capacity
	maxRunning int
	waitP50    time.Duration
	waitMax    time.Duration
	calls      int
	wall       time.Duration
}

func (r simResult) spread() float64 {
	lo, hi := slices.Min(r.leases), slices.Max(r.leases)
	if lo == 0 {
		return float64(hi)
	}
	return float64(hi) / float64(lo)
}

func runPoolSim(t testing.TB, s simShape) simResult {
	t.Helper()
	clock := &queuetest.Clock{}
	cfg := queue.DefaultConfig()
	cfg.LimitMemoryBytes, cfg.LimitCPUs = 2<<30, 2
	cfg.LeaseTTL = 24 * time.Hour // runners renew; the simulation does not
	q, err := sqlite.Open(filepath.Join(t.TempDir(), "sim.db"), cfg, sqlite.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))

	type integ struct {
		id       string
		period   time.Duration
		runs     time.Duration
		mem      int64
		cpuPct   float64
		nextDue  time.Time
		running  *queue.Job
		endsAt   time.Time
		queuedAt time.Time
	}
	start := clock.Now()
	ins := make([]*integ, s.integrations)
	for i := range ins {
		ins[i] = &integ{
			id:     fmt.Sprintf("int-%04d", i),
			period: time.Duration(5+rng.IntN(55)) * time.Minute,
			runs:   time.Duration(30+rng.IntN(570)) * time.Second,
			mem:    int64(64+rng.IntN(960)) << 20,
			cpuPct: float64(10 + rng.IntN(90)),
		}
		ins[i].nextDue = start.Add(time.Duration(rng.Int64N(int64(ins[i].period))))
	}
	byID := map[string]*integ{}
	for _, in := range ins {
		byID[in.id] = in
	}
	cols := make([]string, s.collectors)
	for i := range cols {
		cols[i] = fmt.Sprintf("col-%02d", i)
	}
	res := simResult{leases: make([]int, s.collectors)}
	var waits []time.Duration
	wallStart := time.Now()
	end := start.Add(time.Duration(s.hours * float64(time.Hour)))
	for now := start; now.Before(end); now = clock.Now() {
		// Finished runs report their true peaks.
		running := 0
		for _, in := range ins {
			if in.running != nil && !now.Before(in.endsAt) {
				if _, err := q.Finish(ctx, in.running.ID, in.running.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: in.mem, PeakCPUPercent: in.cpuPct}); err != nil {
					t.Fatal(err)
				}
				in.running = nil
			}
			if in.running != nil {
				running++
			}
		}
		res.maxRunning = max(res.maxRunning, running)
		// The scheduler.
		for _, in := range ins {
			if !now.Before(in.nextDue) {
				in.nextDue = in.nextDue.Add(in.period)
				j, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: in.id, Pool: "dc1"})
				if err != nil {
					t.Fatal(err)
				}
				if !existed {
					in.queuedAt = j.CreatedAt
				}
			}
		}
		// The members ask, in passes, until nobody gets anything.
		for {
			leasedAny := false
			for _, ci := range rng.Perm(len(cols)) {
				for {
					res.calls++
					j, err := q.Next(ctx, queue.NextRequest{CollectorID: cols[ci], Pool: "dc1", Capacity: s.capacity})
					if errors.Is(err, queue.ErrNoJob) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					leasedAny = true
					res.leases[ci]++
					u, err := q.Usage(ctx, cols[ci])
					if err != nil {
						t.Fatal(err)
					}
					if u.MemoryBytes > s.capacity.MemoryBytes || u.CPUs > s.capacity.CPUs+1e-9 || (s.capacity.MaxJobs > 0 && u.Jobs > s.capacity.MaxJobs) {
						res.misfits++
					}
					in := byID[j.IntegrationID]
					in.running, in.endsAt = j, clock.Now().Add(in.runs)
					waits = append(waits, clock.Now().Sub(in.queuedAt))
				}
			}
			if !leasedAny {
				break
			}
		}
		clock.Advance(s.tick)
	}
	res.wall = time.Since(wallStart)
	if len(waits) > 0 {
		slices.Sort(waits)
		res.waitP50, res.waitMax = waits[len(waits)/2], waits[len(waits)-1]
	}
	return res
}

// TestPoolSimulation is a smaller run of the pool simulation: the leases
// spread evenly over equal members (max/min ≤ 1.5) and none went where
// its predicted use did not fit.
func TestPoolSimulation(t *testing.T) {
	s := simShape{integrations: 200, collectors: 10, hours: 2, tick: 30 * time.Second,
		capacity: queue.Capacity{MemoryBytes: 8 << 30, CPUs: 4}}
	if testing.Short() {
		s.hours = 0.5
	}
	r := runPoolSim(t, s)
	t.Logf("leases per member %v (max/min %.2f), misfits %d, most running %d, queue wait p50 %v max %v, %d Next calls in %v",
		r.leases, r.spread(), r.misfits, r.maxRunning, r.waitP50, r.waitMax, r.calls, r.wall)
	if r.misfits != 0 {
		t.Errorf("%d leases went where the job did not fit", r.misfits)
	}
	if r.spread() > 1.5 {
		t.Errorf("leases per member %v: max/min %.2f, want ≤ 1.5", r.leases, r.spread())
	}
}

// BenchmarkPoolSimulation is P11's figure: 1,000 integrations on a pool of
// 50 equal collectors for 10 simulated hours. It reports the spread of
// leases over members (max/min), the leases that did not fit (must be 0)
// and the queue wait. One iteration is the whole simulation.
func BenchmarkPoolSimulation(b *testing.B) {
	for range b.N {
		r := runPoolSim(b, simShape{integrations: 1000, collectors: 50, hours: 10, tick: 30 * time.Second,
			capacity: queue.Capacity{MemoryBytes: 8 << 30, CPUs: 4}})
		b.ReportMetric(r.spread(), "max/min")
		b.ReportMetric(float64(r.misfits), "misfits")
		b.ReportMetric(float64(slices.Min(r.leases)), "min-leases")
		b.ReportMetric(float64(slices.Max(r.leases)), "max-leases")
		b.ReportMetric(r.waitP50.Seconds(), "wait-p50-s")
		b.ReportMetric(float64(r.calls)/r.wall.Seconds(), "next-calls/s")
		if r.misfits != 0 || r.spread() > 1.5 {
			b.Errorf("spread %.2f (leases %v), misfits %d", r.spread(), r.leases, r.misfits)
		}
	}
}

// BenchmarkPoolNext measures Next alone (the lease: one write
// transaction with the admission query), through a pool with capacity
// filtering ("pool-capacity") against a collector's own queue without it
// ("collector", the baseline), in the same run. The queue holds 500 queued
// jobs of integrations with learned peaks, the member runs 10 jobs
// already, and each leased job is finished (untimed) so that the member's
// load stays put.
func BenchmarkPoolNext(b *testing.B) {
	for _, pooled := range []bool{false, true} {
		name := "collector"
		if pooled {
			name = "pool-capacity"
		}
		b.Run(name, func(b *testing.B) {
			q := benchQueue(b)
			ctx := context.Background()
			req := queue.NextRequest{CollectorID: "col-a"}
			enq := func(in string) queue.EnqueueRequest {
				return queue.EnqueueRequest{IntegrationID: in, CollectorID: "col-a"}
			}
			if pooled {
				req = queue.NextRequest{CollectorID: "col-a", Pool: "dc1", Capacity: queue.Capacity{MemoryBytes: 64 << 30, CPUs: 64, MaxJobs: 100}}
				enq = func(in string) queue.EnqueueRequest { return queue.EnqueueRequest{IntegrationID: in, Pool: "dc1"} }
			}
			lease := func() *queue.Job {
				j, err := q.Next(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				return j
			}
			// Learned peaks for every integration, and ten running jobs.
			for i := range 510 {
				in := fmt.Sprintf("int-%d", i)
				if _, _, err := q.Enqueue(ctx, enq(in)); err != nil {
					b.Fatal(err)
				}
				j := lease()
				if i < 500 {
					q.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: 50 << 20, PeakCPUPercent: 10})
				}
			}
			for i := range 500 {
				q.Enqueue(ctx, enq(fmt.Sprintf("int-%d", i)))
			}
			b.ResetTimer()
			start, paused := time.Now(), time.Duration(0)
			for i := range b.N {
				j := lease()
				p := time.Now()
				b.StopTimer()
				q.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: 50 << 20, PeakCPUPercent: 10})
				q.Enqueue(ctx, enq(j.IntegrationID))
				_ = i
				b.StartTimer()
				paused += time.Since(p)
			}
			b.ReportMetric(float64(b.N)/(time.Since(start)-paused).Seconds(), "leases/s")
		})
	}
}
