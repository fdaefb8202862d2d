package test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/env"
)

// Pools end to end: one platform, two collectors in pool "dc1", one on
// Podman and one on Docker, each offering its jobs 384 MiB. A never-run
// integration is predicted at 256 MiB (queue.DefaultConfig), so one
// member never runs two of them at once, while the two members run two
// side by side; and a job whose member dies goes back to the pool when
// its lease (4 s in the suite) expires and runs on the other member.

const (
	poolName = "dc1"
	// poolJobMemory is what each member offers its jobs: room for one
	// never-run job (256 MiB predicted), not two.
	poolJobMemory = 384 << 20
	// poolLeaseTTL is the suite platform's --lease-ttl.
	poolLeaseTTL = 4 * time.Second
	// poolPickupSlack is what the failover may take beyond the lease TTL:
	// the other member's long poll seeing the expiry (the queue's 1 s poll
	// interval), sealing, and its runner's start of the job, on a loaded
	// two-core machine.
	poolPickupSlack = 6 * time.Second
	poolSecret      = "e2e-pool-secret-93be1d"
)

// poolIntegration creates an integration whose jobs go to pool.
func (p *platformProc) poolIntegration(t *testing.T, pool string, cfg map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(cfg)
	var in api.Integration
	p.cliJSON(&in, "integrations", "create", "--name", fmt.Sprintf("pool-%d", time.Now().UnixNano()), "--image", world.exampleImage,
		"--config", string(b), "--secret-field", "token", "--pool", pool, "--network", "host", "--interval", "24h")
	if in.Pool != pool || in.CollectorID != "" {
		t.Fatalf("integration created for pool %s: pool %q, collector %q", pool, in.Pool, in.CollectorID)
	}
	return in.ID
}

// entityList is every live entity of an integration as listed (not
// deduplicated: a duplicate key would show twice).
func (p *platformProc) entityList(t *testing.T, integrationID string) []api.Item {
	t.Helper()
	var out api.ItemList
	p.cliJSON(&out, "entities", "list", "--integration", integrationID)
	return out.Entities
}

// poolMember is a collector installed on one engine and put in the pool.
func poolMember(t *testing.T, p *platformProc, k *kit) *host {
	t.Helper()
	h := installHost(t, p, k, map[string]string{env.JobMemory: strconv.Itoa(poolJobMemory)})
	var c api.Collector
	p.cliJSON(&c, "collectors", "set-pool", h.id, "--pool", poolName)
	if c.Pool != poolName {
		t.Fatalf("collectors set-pool %s --pool %s: pool %q", h.id, poolName, c.Pool)
	}
	return h
}

func TestPoolPodmanAndDocker(t *testing.T) {
	need(t)
	begin := time.Now()
	defer func() { t.Logf("wall time: %v", time.Since(begin).Round(time.Second)) }()
	p := startPlatform(t)
	members := []*host{poolMember(t, p, podmanKit(t)), poolMember(t, p, dockerKit(t))}
	byID := map[string]*host{}
	for _, h := range members {
		byID[h.id] = h
	}

	// Each member must be active and its heartbeat must carry the offered
	// memory: until then the platform knows no capacity and bounds nothing.
	for _, h := range members {
		waitFor(t, h.kit.name+" collector active with its offered capacity", 90*time.Second, func() bool {
			c := p.collector(t, h.id)
			return c.Status == api.CollectorStatusActive && c.LastHeartbeat != nil &&
				c.LastHeartbeat.Capacity.MemoryTotalBytes == poolJobMemory
		})
	}
	capacityKnown := time.Now()
	// The platform reads a collector's pool and capacity again every
	// jobs.Config.RefreshEvery (5 s) of a long poll: a runner's poll begun
	// before set-pool or before its first heartbeat sees them after that.
	// Without the wait, one member could take the first jobs alone.
	if d := time.Until(capacityKnown.Add(6 * time.Second)); d > 0 && !t.Failed() {
		t.Logf("waiting %v for the runners' long polls begun before their pool and capacity were known", d.Round(time.Millisecond))
		time.Sleep(d)
	}

	t.Run("Spread", func(t *testing.T) {
		const n, count = 4, 20
		var jobIDs []string
		integ := map[string]string{} // job -> integration
		for i := range n {
			id := p.poolIntegration(t, poolName, map[string]any{"count": count, "prefix": fmt.Sprintf("spread%d-", i),
				"sleep_seconds": 3, "token": poolSecret})
			j := p.runJob(t, id)
			if j.Pool != poolName {
				t.Errorf("job %s of pool integration %s: pool %q", j.ID, id, j.Pool)
			}
			jobIDs = append(jobIDs, j.ID)
			integ[j.ID] = id
		}
		var done []api.Job
		for _, id := range jobIDs {
			j := p.waitJob(t, id, 3*time.Minute)
			if j.State != api.JobSucceeded {
				logs, _ := p.cli("jobs", "logs", j.ID)
				t.Fatalf("job %+v\nlogs:\n%s", j, logs)
			}
			if byID[j.CollectorID] == nil || j.StartedAt == nil || j.FinishedAt == nil {
				t.Fatalf("finished job %+v: not run by a pool member, or no start or finish time", j)
			}
			if keys := p.entityKeys(t, integ[j.ID]); len(keys) != count+1 {
				t.Errorf("job %s: %d entities, want %d (%d and the secret proof)", j.ID, len(keys), count+1, count)
			}
			done = append(done, j)
		}
		perMember := map[string][]api.Job{}
		for _, j := range done {
			perMember[j.CollectorID] = append(perMember[j.CollectorID], j)
			t.Logf("job %s on %s (%s): %s .. %s", j.ID, j.CollectorID, byID[j.CollectorID].kit.name,
				j.StartedAt.Format("15:04:05.000"), j.FinishedAt.Format("15:04:05.000"))
		}
		if len(perMember) != 2 {
			t.Errorf("the %d jobs ran on %d member(s), want both", n, len(perMember))
		}
		overlap := func(a, b api.Job) bool { return a.StartedAt.Before(*b.FinishedAt) && b.StartedAt.Before(*a.FinishedAt) }
		for id, js := range perMember {
			sort.Slice(js, func(a, b int) bool { return js[a].StartedAt.Before(*js[b].StartedAt) })
			for i := 1; i < len(js); i++ {
				if overlap(js[i-1], js[i]) {
					t.Errorf("jobs %s and %s overlapped on %s (%s): two never-run jobs (256 MiB each) do not fit in its %d MiB",
						js[i-1].ID, js[i].ID, id, byID[id].kit.name, poolJobMemory>>20)
				}
			}
		}
		parallel := 0
		for i := range done {
			for k := i + 1; k < len(done); k++ {
				if done[i].CollectorID != done[k].CollectorID && overlap(done[i], done[k]) {
					parallel++
				}
			}
		}
		if parallel == 0 {
			t.Errorf("no two jobs ran at the same time on the two members")
		}
		t.Logf("%d pair(s) of jobs ran side by side on the two members", parallel)
	})

	t.Run("Failover", func(t *testing.T) {
		const count = 50
		ctx := context.Background()
		id := p.poolIntegration(t, poolName, map[string]any{"count": count, "prefix": "failover-", "sleep_seconds": 20, "token": poolSecret})
		j := p.runJob(t, id)
		var first api.Job
		waitFor(t, "the job running", 2*time.Minute, func() bool {
			first = p.job(t, j.ID)
			return first.State == api.JobRunning
		})
		victim := byID[first.CollectorID]
		if victim == nil {
			t.Fatalf("running job %+v: not on a pool member", first)
		}
		var other *host
		for _, h := range members {
			if h != victim {
				other = h
			}
		}
		t.Logf("the job runs on %s (%s), attempt %d; killing that collector", victim.id, victim.kit.name, first.Attempt)

		// The collector dies with its job, as a crashed host would: no
		// graceful stop (`podman rm -f` alone sends SIGTERM first, and the
		// runner would stop and remove its job itself), so SIGKILL at once
		// (-t 0; docker rm -f kills at once). Its runner stops renewing the
		// lease; its containers and the job's are gone.
		rm := []string{"rm", "-f", "collector-runner", "collector-daemon"}
		if victim.kit.name == "podman" {
			rm = []string{"rm", "-f", "-t", "0", "collector-runner", "collector-daemon"}
		}
		killed := time.Now()
		if out, err := victim.kit.run(rm...); err != nil {
			t.Fatalf("remove the victim's collector: %v\n%s", err, out)
		}
		removed := time.Since(killed)
		list, err := victim.eng.ListContainers(ctx, map[string]string{"io.collector.role": "job"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			t.Errorf("no job container on %s after its runner's kill: the runner was stopped, not killed", victim.kit.name)
		}
		for _, c := range list {
			if err := victim.eng.RemoveContainer(ctx, c.ID, true); err != nil {
				t.Errorf("remove the job container %s: %v", c.ID, err)
			}
		}
		t.Logf("collector removed %v after the kill began; %d job container(s) removed %v after it",
			removed.Round(time.Millisecond), len(list), time.Since(killed).Round(time.Millisecond))

		// Until the other member runs it, watch the job's every state.
		var (
			sawExpired           bool
			requeuedAt, leasedAt time.Duration // from the kill, as first seen
			runningAt            time.Duration
			moved                api.Job
			deadline             = time.Now().Add(poolLeaseTTL + poolPickupSlack + 30*time.Second)
		)
		for {
			moved = p.job(t, j.ID)
			since := time.Since(killed)
			if strings.Contains(moved.Error, "lease expired on attempt 1") {
				sawExpired = true
			}
			if requeuedAt == 0 && moved.Attempt >= 2 {
				requeuedAt = since
			}
			if leasedAt == 0 && moved.CollectorID == other.id && (moved.State == api.JobLeased || moved.State == api.JobRunning) {
				leasedAt = since
			}
			if moved.CollectorID == other.id && moved.State == api.JobRunning {
				runningAt = since
				break
			}
			if moved.State != api.JobRunning && moved.State != api.JobLeased && moved.State != api.JobQueued {
				t.Fatalf("the job after its member's death: %+v", moved)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the job did not move to %s within %v: %+v", other.id, time.Since(killed), moved)
			}
			time.Sleep(150 * time.Millisecond)
		}
		if moved.StartedAt == nil {
			t.Fatalf("running job without started_at: %+v", moved)
		}
		failover := moved.StartedAt.Sub(killed)
		t.Logf("failover: %v from the kill to started_at on %s (%s), attempt %d; first seen requeued at %v, leased by it at %v, running at %v (lease TTL %v)",
			failover.Round(time.Millisecond), other.id, other.kit.name, moved.Attempt, requeuedAt.Round(time.Millisecond),
			leasedAt.Round(time.Millisecond), runningAt.Round(time.Millisecond), poolLeaseTTL)
		if failover > poolLeaseTTL+poolPickupSlack {
			t.Errorf("failover took %v, want at most the lease TTL %v + %v", failover, poolLeaseTTL, poolPickupSlack)
		}
		// The expiry's error stays on the job until it finishes, so the
		// polls see it whatever the speed of the re-lease.
		if !sawExpired {
			t.Errorf("the job never showed the error %q while it moved (last: %+v)", "lease expired on attempt 1 of 3; requeued", moved)
		}

		done := p.waitJob(t, j.ID, 3*time.Minute)
		if done.State != api.JobSucceeded || done.Attempt != 2 || done.CollectorID != other.id {
			logs, _ := p.cli("jobs", "logs", j.ID)
			t.Fatalf("the job after the failover: %+v (want succeeded on attempt 2 on %s)\nlogs:\n%s", done, other.id, logs)
		}
		ents := p.entityList(t, id)
		seen := map[string]int{}
		for _, e := range ents {
			seen[e.Key]++
		}
		want := count + 1 // and the secret proof
		if len(ents) != want || len(seen) != want {
			t.Errorf("%d entities (%d distinct keys), want %d: no duplicates, none missing", len(ents), len(seen), want)
		}
		for i := range count {
			if k := fmt.Sprintf("failover-entity-%d", i); seen[k] != 1 {
				t.Errorf("entity %s listed %d times, want once", k, seen[k])
			}
		}
		if seen["failover-example-secret-proof"] != 1 {
			t.Errorf("the secret proof listed %d times, want once", seen["failover-example-secret-proof"])
		}
	})

	// A second collector on the same Podman, its containers named with a
	// prefix: both run side by side, and it runs a job of its own.
	t.Run("SecondCollectorOnOneEngine", func(t *testing.T) {
		k := podmanKit(t)
		b := installHost(t, p, k, map[string]string{env.NamePrefix: "b-"})
		waitFor(t, "the prefixed collector active", 90*time.Second, func() bool { return p.collector(t, b.id).Status == api.CollectorStatusActive })
		for _, n := range []string{"b-collector-daemon", "b-collector-runner"} {
			c, err := b.eng.InspectContainer(context.Background(), n)
			if err != nil || !c.Running || c.Labels["io.collector.collector"] != b.id {
				t.Errorf("%s: %+v, %v; want it running for %s", n, c, err, b.id)
			}
		}
		id := p.integration(t, b.id, world.exampleImage, map[string]any{"count": 5, "prefix": "second-", "token": poolSecret})
		if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded || j.CollectorID != b.id {
			t.Errorf("the prefixed collector's job: %+v", j)
		}
	})

}
