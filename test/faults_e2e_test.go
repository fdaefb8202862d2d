package test

// Faults injected into real components (issue P15's campaign): each case
// asserts the outcome, that no record is lost or duplicated, and that the
// collector recovers by itself.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/testutil"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

// TestPlatformDiskFull: the platform's data directory is on a small tmpfs
// that fills up while a job is under way. Writes answer 503
// storage_full with a reason (heartbeats, ingest, leases), the collector
// backs off and retries, SQLite stays intact, and once space is freed
// everything completes: the job succeeds and its records are all there,
// once each.
func TestPlatformDiskFull(t *testing.T) {
	need(t)
	disk := testutil.SmallDisk(t, 64<<20)
	p := startPlatformIn(t, filepath.Join(disk, "platform"), world.policy)
	k := podmanKit(t)
	h := install(t, p, k)
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	const count = 3000
	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": count, "prefix": "full-", "token": "e2e-full-secret", "sleep_seconds": 3})
	job := p.runJob(t, id)
	free := testutil.Fill(t, disk)
	filled := time.Now()
	// The platform says why, and the collector hears it.
	waitFor(t, "a 503 storage_full answered", time.Minute, func() bool { return strings.Contains(p.log.String(), "storage full") })
	told := func() (bool, string) {
		d, _ := k.run("logs", "collector-daemon")
		r, _ := k.run("logs", "collector-runner")
		return strings.Contains(d+r, "storage_full"), d + r
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		ok, logs := told()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector's logs do not say the platform's disk is full:\n%s\nplatform:\n%s", logs, p.log)
		}
	}
	time.Sleep(5 * time.Second) // let it retry a while against the full disk
	free()
	freed := time.Now()
	// The lease may have expired while nothing could be written: the next
	// attempt is the job's.
	j := p.waitSucceeded(t, job.ID, 3*time.Minute, "the job after the disk was freed")
	if keys := p.entityKeys(t, id); len(keys) != count+1 {
		t.Errorf("%d entities after the full disk, want %d (the records and the secret proof), once each", len(keys), count+1)
	}
	waitFor(t, "collector active again", time.Minute, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	p.checkIntegrity(t, "after the full disk")
	t.Logf("disk full for %v; the job %s succeeded on attempt %d, %v after space was freed",
		freed.Sub(filled).Round(time.Millisecond), j.ID, j.Attempt, time.Since(freed).Round(time.Millisecond))
}

// TestPlatformKilledDuringIngest: the platform is killed (SIGKILL) while a
// job's records are being ingested, and started again on the same data.
// Nothing is half-written: the job ends succeeded (on its first attempt,
// or on the next once its lease ran out), every record is there once, the
// database is intact, and the collector leaves no job container or secret.
func TestPlatformKilledDuringIngest(t *testing.T) {
	need(t)
	p := startPlatform(t)
	k := podmanKit(t)
	h := install(t, p, k)
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	const count = 60000
	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": count, "prefix": "kill-", "token": "e2e-kill-secret"})
	job := p.runJob(t, id)
	var before int64
	waitFor(t, "records being ingested", 2*time.Minute, func() bool {
		before = p.job(t, job.ID).Records
		return before > 0
	})
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	p.cmd = nil
	killed := time.Now()
	time.Sleep(2 * time.Second)
	p.start()
	j := p.waitSucceeded(t, job.ID, 5*time.Minute, "the job after the platform's kill")
	if keys := p.entityKeys(t, id); len(keys) != count+1 {
		t.Errorf("%d entities, want %d once each", len(keys), count+1)
	}
	p.checkIntegrity(t, "after the kill")
	waitFor(t, "no job container or secret left", time.Minute, func() bool {
		left, err := h.eng.ListContainers(context.Background(), map[string]string{runner.LabelRole: runner.RoleJob})
		files, _ := os.ReadDir(k.secretDir)
		return err == nil && len(left) == 0 && len(files) == 0
	})
	t.Logf("platform killed with %d of %d records ingested; the job succeeded on attempt %d, %v after the kill",
		before, count+1, j.Attempt, j.FinishedAt.Sub(killed).Round(time.Millisecond))
}

// flakyTCP is a TCP proxy to a backend that counts the connections it
// accepts and, while down, closes each at once (the registry "down" as a
// firewall reset or a crashed service looks).
type flakyTCP struct {
	ln      net.Listener
	backend string
	down    atomic.Bool
	conns   atomic.Int64

	// delay holds every chunk read from either side that long before it
	// is written to the other (latency, not a bandwidth bound: later
	// chunks are read meanwhile).
	delay time.Duration

	mu   sync.Mutex
	live map[net.Conn]bool // forwarded connections, both ends
	hole bool              // black hole: new connections are held, silent
	held []net.Conn
}

// blackHole cuts every forwarded connection and holds new ones open
// without a byte either way, as a dropped route does, until heal.
func (f *flakyTCP) blackHole() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hole = true
	for c := range f.live {
		c.Close()
	}
}

// heal ends the black hole: held connections are closed (their clients
// connect again), new ones are forwarded.
func (f *flakyTCP) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hole = false
	for _, c := range f.held {
		c.Close()
	}
	f.held = nil
}

func startFlakyTCP(t *testing.T, backend string) *flakyTCP { return startDelayedTCP(t, backend, 0) }

// startDelayedTCP is startFlakyTCP whose every chunk is held delay.
func startDelayedTCP(t *testing.T, backend string, delay time.Duration) *flakyTCP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flakyTCP{ln: ln, backend: backend, live: map[net.Conn]bool{}, delay: delay}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			if f.down.Load() {
				c.Close()
				continue
			}
			f.mu.Lock()
			if f.hole {
				f.held = append(f.held, c)
				f.mu.Unlock()
				continue
			}
			f.mu.Unlock()
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", f.backend)
				if err != nil {
					return
				}
				defer b.Close()
				f.mu.Lock()
				f.live[c], f.live[b] = true, true
				f.mu.Unlock()
				defer func() {
					f.mu.Lock()
					delete(f.live, c)
					delete(f.live, b)
					f.mu.Unlock()
				}()
				go f.copy(b, c)
				f.copy(c, b)
			}()
		}
	}()
	return f
}

func (f *flakyTCP) addr() string { return f.ln.Addr().String() }

// copy forwards src to dst, each chunk f.delay after it was read.
func (f *flakyTCP) copy(dst, src net.Conn) {
	if f.delay == 0 {
		io.Copy(dst, src)
		return
	}
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(f.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite() // the source's end, passed on after its delay
	}
	for range q { // let the reader finish
	}
}

// TestRegistryDownDuringPull: the integration's registry goes down before
// a job pulls its image. The job fails with a clear error naming the
// registry, after a bounded number of attempts (no retry storm); once the
// registry is back the next run succeeds.
func TestRegistryDownDuringPull(t *testing.T) {
	need(t)
	reg := startFlakyTCP(t, world.registry.Addr)
	image := reg.addr() + "/collectorhq/integration-example:e2e-flaky"
	if out, err := world.podman.Run("push", "--tls-verify=false", world.exampleImage, "docker://"+image); err != nil {
		t.Fatalf("push through the proxy: %v\n%s", err, out)
	}
	keys := filepath.Join(world.dir, "keys")
	if _, err := run(keys, []string{"COSIGN_PASSWORD=e2e-password"}, filepath.Join(world.bin, "collector-release"),
		"sign", "--insecure", "--key", filepath.Join(keys, "cosign.key"), image); err != nil {
		t.Fatal(err)
	}
	// The e2e policy, trusting the same key for the proxy's repositories.
	var policy map[string]any
	raw, err := os.ReadFile(world.policy)
	if err != nil || json.Unmarshal(raw, &policy) != nil {
		t.Fatalf("read the policy: %v", err)
	}
	docker := policy["transports"].(map[string]any)["docker"].(map[string]any)
	docker[reg.addr()+"/collectorhq"] = docker[world.registry.Addr+"/collectorhq"]
	raw, _ = json.Marshal(policy)
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(policyFile, raw, 0o644)

	p := startPlatformWith(t, policyFile)
	k := podmanKit(t)
	h := installHost(t, p, k, map[string]string{env.InsecureRegistries: reg.addr()})
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	id := p.integration(t, h.id, image, map[string]any{"count": 5, "prefix": "down-", "token": "e2e-down-secret"})

	reg.down.Store(true)
	before := reg.conns.Load()
	j := p.waitJob(t, p.runJob(t, id).ID, 5*time.Minute)
	attempts := reg.conns.Load() - before
	logs, _ := p.cli("jobs", "logs", j.ID)
	if j.State != api.JobFailed || !strings.Contains(j.Error, reg.addr()) || !strings.Contains(j.Error, "could not be fetched") ||
		!strings.Contains(strings.ToLower(j.Error+logs), "registry unreachable") {
		t.Errorf("a job whose registry is down: %+v, want failed naming the registry %s\n%s", j, reg.addr(), logs)
	}
	if attempts > 20 {
		t.Errorf("%d connections to the registry for one failed job: a retry storm", attempts)
	}
	if keys := p.entityKeys(t, id); len(keys) != 0 {
		t.Errorf("%d entities from a job that could not pull", len(keys))
	}
	t.Logf("registry down: job failed after %d connection attempts: %s", attempts, j.Error)

	reg.down.Store(false)
	p.waitSucceeded(t, p.runJob(t, id).ID, 5*time.Minute, "the next run with the registry back")
}

// TestNetworkBlackHoledPastALease: the route between the collector and the
// platform drops everything (a black hole, not a reset) for longer than a
// lease while a job runs. The platform hands the job over when its lease
// expires; when the route comes back the collector's heartbeats resume,
// the old run learns its lease is lost and is stopped, and the job ends
// succeeded with every record once. At no moment do two containers run the
// job.
func TestNetworkBlackHoledPastALease(t *testing.T) {
	need(t)
	p := startPlatform(t)
	route := startFlakyTCP(t, p.addr)
	k := podmanKit(t)
	h := installHost(t, p, k, map[string]string{env.PlatformURL: "https://" + route.addr()})
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 20, "prefix": "hole-", "token": "e2e-hole-secret", "sleep_seconds": 15})
	job := p.runJob(t, id)
	waitFor(t, "the job running", 90*time.Second, func() bool { return p.job(t, job.ID).State == api.JobRunning })

	// Watch the job's containers all along.
	stop := make(chan struct{})
	var most atomic.Int64
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			list, err := h.eng.ListContainers(context.Background(), map[string]string{runner.LabelJob: job.ID})
			if err != nil {
				continue
			}
			running := int64(0)
			for _, c := range list {
				if c.Running {
					running++
				}
			}
			if running > most.Load() {
				most.Store(running)
			}
		}
	})
	stopWatch := sync.OnceFunc(func() { close(stop); watch.Wait() })
	defer stopWatch()
	holed := time.Now()
	route.blackHole()
	waitFor(t, "the lease handed over", time.Minute, func() bool { return p.job(t, job.ID).Attempt > 1 })
	time.Sleep(4 * time.Second) // past a lease, and past a heartbeat or two
	route.heal()
	healed := time.Now()
	hb := p.collector(t, h.id).LastHeartbeatAt
	waitFor(t, "heartbeats again", time.Minute, func() bool {
		c := p.collector(t, h.id)
		return c.LastHeartbeatAt != nil && (hb == nil || c.LastHeartbeatAt.After(*hb)) && c.Status == api.CollectorStatusActive
	})
	j := p.waitSucceeded(t, job.ID, 3*time.Minute, "the job after the black hole")
	stopWatch()
	if keys := p.entityKeys(t, id); len(keys) != 21 {
		t.Errorf("%d entities, want 21 once each", len(keys))
	}
	if n := most.Load(); n > 1 {
		t.Errorf("%d containers ran the job at once", n)
	}
	t.Logf("black hole for %v: the job was handed over (attempt %d) and succeeded %v after the route healed; at most %d container ran it at a time",
		healed.Sub(holed).Round(time.Millisecond), j.Attempt, j.FinishedAt.Sub(healed).Round(time.Millisecond), most.Load())
}

// waitSucceeded waits for job id to end and fails the test, with the job's
// logs, unless it succeeded.
func (p *platformProc) waitSucceeded(t *testing.T, id string, d time.Duration, what string) api.Job {
	t.Helper()
	j := p.waitJob(t, id, d)
	if j.State != api.JobSucceeded {
		logs, _ := p.cli("jobs", "logs", j.ID)
		t.Fatalf("%s: %+v\n%s", what, j, logs)
	}
	return j
}

// checkIntegrity runs SQLite's integrity check on the platform's database.
func (p *platformProc) checkIntegrity(t *testing.T, when string) {
	t.Helper()
	db, err := qsqlite.OpenDB(filepath.Join(p.dataDir, "platform.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check %s: %q, %v", when, check, err)
	}
}

// TestEngineStoppedAMinute: the Podman service stops for a minute while a
// job runs (its container runs on under conmon, and ends meanwhile). The
// collector is shown degraded, naming the engine, while it is away; the
// job's records reach the platform through the records channel without
// the engine; once the service is back the job ends succeeded with every
// record once and the collector is active again, its own containers
// neither restarted nor recreated.
func TestEngineStoppedAMinute(t *testing.T) {
	need(t)
	p := startPlatform(t)
	k := podmanKit(t)
	h := installHost(t, p, k, nil)
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	before := roleContainers(t, h)
	const n = 20_000 // several batches: the last one waits for the job's end
	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": n, "relationships": true, "sleep_seconds": 20, "prefix": "away-", "token": "e2e-engine-away"})
	j := p.runJob(t, id)
	waitFor(t, "job running", time.Minute, func() bool { return p.job(t, j.ID).State == api.JobRunning })

	k.stopService()
	stopped := time.Now()
	restarted := false
	defer func() {
		if !restarted {
			k.startService()
		}
	}()
	var reason string
	waitFor(t, "the collector shown degraded", 30*time.Second, func() bool {
		c := p.collector(t, h.id)
		reason = c.StatusReason
		return c.Status == api.CollectorStatusDegraded
	})
	if !strings.Contains(reason, "container engine unreachable") {
		t.Errorf("degraded with reason %q, want the engine named", reason)
	}
	var stored int64
	waitFor(t, "the job's records stored while the engine is away", 30*time.Second, func() bool {
		stored, _ = liveEntities(p.dataDir, id)
		return stored >= n/2
	})
	if time.Since(stopped) > time.Minute {
		t.Fatalf("the records arrived only %v after the engine stopped", time.Since(stopped))
	}
	time.Sleep(time.Until(stopped.Add(time.Minute)))
	if err := k.startService(); err != nil {
		t.Fatalf("start the engine again: %v", err)
	}
	restarted = true
	t.Logf("the Podman service was away %v; %d entities were stored meanwhile", time.Since(stopped).Round(time.Second), stored)

	done := p.waitSucceeded(t, j.ID, 3*time.Minute, "the job across a minute without the engine")
	if want := int64(n + n - 1 + 1); done.Records != want || done.Attempt != 1 {
		t.Errorf("job: %d records on attempt %d, want %d on the first", done.Records, done.Attempt, want)
	}
	if live, err := liveEntities(p.dataDir, id); err != nil || live != n+1 {
		t.Errorf("%d entities (%v), want %d", live, err, n+1)
	}
	waitFor(t, "collector active again", time.Minute, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	rolesUntouched(t, h, before, "the outage")
	p.checkIntegrity(t, "after the engine's minute away")
}

// TestDelayedPackets: every packet between the collector and the platform
// is held 2 s each way (a congested satellite link). With a lease and a
// heartbeat interval sized for such a link the collector enrolls, stays
// active, and a job runs once, on its first attempt, every record once.
func TestDelayedPackets(t *testing.T) {
	need(t)
	p := startPlatformFlags(t, "--heartbeat-interval", "10s", "--lease-ttl", "60s")
	route := startDelayedTCP(t, p.addr, 2*time.Second)
	k := podmanKit(t)
	start := time.Now()
	h := installHost(t, p, k, map[string]string{env.PlatformURL: "https://" + route.addr()})
	t.Logf("enrolled through the delayed route in %v", time.Since(start).Round(time.Second))
	waitFor(t, "collector active", 3*time.Minute, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 3000, "relationships": true, "prefix": "slow-", "token": "e2e-delay-secret"})
	start = time.Now()
	j := p.waitSucceeded(t, p.runJob(t, id).ID, 5*time.Minute, "a job over the delayed route")
	if j.Attempt != 1 || j.Records != 3000+2999+1 {
		t.Errorf("job: attempt %d, %d records; want the first attempt, %d records", j.Attempt, j.Records, 3000+2999+1)
	}
	if live, err := liveEntities(p.dataDir, id); err != nil || live != 3001 {
		t.Errorf("%d entities (%v), want 3001 once each", live, err)
	}
	if c := p.collector(t, h.id); c.Status != api.CollectorStatusActive {
		t.Errorf("collector %s after the job (%s), want active", c.Status, c.StatusReason)
	}
	t.Logf("the job took %v over a route holding every packet 2 s", time.Since(start).Round(time.Second))
}

// TestRolesKilledAtTheirSteps: the daemon and the runner die as kill -9
// leaves things, once each, at chosen steps (a test image's
// COLLECTOR_TEST_CRASH_AT), and the engine's restart policy brings them
// back:
//   - the daemon right after the platform issued it an access token (the
//     assertion spent, the token never read): the restarted daemon signs a
//     new assertion and heartbeats; the collector stays enrolled;
//   - the runner once a job's container ended and was removed, before its
//     report: the lease expires, the job runs again and succeeds, every
//     record once;
//   - the runner after the platform took a job's report, before it
//     recorded the job finished: the job stays succeeded on its first
//     attempt and is not run again.
//
// Nothing of a job is left on the host after any of them.
func TestRolesKilledAtTheirSteps(t *testing.T) {
	need(t)
	t.Run("Podman", func(t *testing.T) { rolesKilled(t, podmanKit(t)) })
	t.Run("Docker", func(t *testing.T) { rolesKilled(t, dockerKit(t)) })
}

func rolesKilled(t *testing.T, k *kit) {
	repo := world.registry.Addr + "/collectorhq/collector"
	p := startPlatform(t)
	for _, c := range []struct {
		name, steps string
		attempt     int
	}{
		{"DaemonAtTokenRunnerAtJobEnd", "daemon-token,runner-ended", 2},
		{"RunnerAfterReport", "runner-finished", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := collectorVariant(t, repo, "e2e-crash-"+strings.ReplaceAll(c.steps, ",", "-"), true,
				`ENV `+env.TestCrashAt+`=`+c.steps)
			h := installHost(t, p, k, map[string]string{env.Image: img})
			ctx := context.Background()
			waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
			restarts := func(name string) int {
				ct, err := h.eng.InspectContainer(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				return ct.RestartCount
			}
			if strings.Contains(c.steps, "daemon-token") {
				if n := restarts("collector-daemon"); n != 1 {
					t.Errorf("the daemon restarted %d times, want once (it died at its first token)", n)
				}
				hb := p.collector(t, h.id).LastHeartbeatAt
				waitFor(t, "heartbeats after the daemon's restart", 30*time.Second, func() bool {
					c := p.collector(t, h.id)
					return c.LastHeartbeatAt != nil && hb != nil && c.LastHeartbeatAt.After(*hb)
				})
			}
			before, err := h.eng.InspectContainer(ctx, "collector-runner")
			if err != nil {
				t.Fatal(err)
			}
			id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 50, "relationships": true, "prefix": "crash-", "token": "e2e-crash-secret"})
			j := p.waitSucceeded(t, p.runJob(t, id).ID, 3*time.Minute, "a job whose runner died")
			// records: the last attempt's (docs/api.md): 100, however
			// many attempts sent them.
			if want := int64(50 + 49 + 1); j.Attempt != c.attempt || j.Records != want {
				t.Errorf("job: attempt %d, %d records; want attempt %d, %d records", j.Attempt, j.Records, c.attempt, want)
			}
			// Started again by the engine's restart policy or by the daemon,
			// whichever comes first (the engine counts only its own).
			waitFor(t, "the runner started again after its crash", 30*time.Second, func() bool {
				ct, err := h.eng.InspectContainer(ctx, "collector-runner")
				return err == nil && ct.Running && ct.StartedAt.After(before.StartedAt)
			})
			if out, _ := k.run("logs", "collector-runner"); strings.Count(out, "test crash: exiting") != 1 {
				t.Errorf("the runner's log has %d test crashes, want one", strings.Count(out, "test crash: exiting"))
			}
			time.Sleep(6 * time.Second) // past a lease: a job run again would show
			if again := p.job(t, j.ID); again.State != api.JobSucceeded || again.Attempt != j.Attempt {
				t.Errorf("the job after a lease's time: %s, attempt %d; want it left succeeded on attempt %d", again.State, again.Attempt, j.Attempt)
			}
			if live, err := liveEntities(p.dataDir, id); err != nil || live != 51 {
				t.Errorf("%d entities (%v), want 51 once each", live, err)
			}
			waitFor(t, "nothing of the job left on the host", 30*time.Second, func() bool {
				list, err := h.eng.ListContainers(ctx, map[string]string{runner.LabelJob: j.ID})
				secrets, _ := os.ReadDir(k.secretDir)
				channels, _ := os.ReadDir(filepath.Join(h.state, "channels"))
				return err == nil && len(list) == 0 && len(secrets) == 0 && len(channels) == 0
			})
		})
	}
}
