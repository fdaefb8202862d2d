package test

// The P5 benchmarks: pickup latency, per-job wall time against a plain
// `podman run --rm`, a million entities through the runner, and the idle
// RSS of the collector's own containers. They run only with -bench, on the
// harness's registry, signed images and private Podman service:
//
//	go test -tags containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper \
//	    -run '^$' -bench . -benchtime 1x -count 3 -timeout 30m ./test/
//
// Each benchmark starts its own platform and installs its own collector, so
// one does not inherit another's heap (the runner's RSS after a million
// records is not the idle RSS).

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine/enginetest"
	"github.com/collectorhq/collector/internal/testutil"

	_ "modernc.org/sqlite" // counts entities in the platform's database, read-only

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/adminctl"
)

// benchRig is one platform with one installed, active collector on Podman.
type benchRig struct {
	p     *platformProc
	admin *api.AdminClient
	h     *host
}

func benchNeed(b *testing.B) {
	b.Helper()
	enginetest.Need(b)
	if testing.Short() {
		b.Skip("benchmarks start a platform and a collector: not in -short")
	}
}

// newBenchRig starts a platform (the harness's flags), installs a collector
// with the printed Podman command and waits for it to be active.
func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	p := benchStartPlatform(b)
	admin, err := adminctl.Connect(adminctl.Connection{Server: p.url, DataDir: p.dataDir, Token: p.token})
	if err != nil {
		b.Fatal(err)
	}
	r := &benchRig{p: p, admin: admin}
	r.h = benchInstall(b, r, podmanKit(b))
	benchWait(b, "collector active", time.Minute, func() bool {
		c, err := admin.Collector(context.Background(), r.h.id)
		return err == nil && c.Status == api.CollectorStatusActive
	})
	return r
}

// benchStartPlatform is startPlatform for a benchmark (the harness's helper
// takes a *testing.T).
func benchStartPlatform(b *testing.B) *platformProc {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := &platformProc{dataDir: filepath.Join(b.TempDir(), "platform"), addr: addr, url: "https://" + addr, log: &testutil.Buffer{}}
	p.args = []string{"--log-format", "json", "serve", "--data-dir", p.dataDir, "--listen", addr, "--public-url", p.url,
		"--collector-image", world.collectorImage, "--image-policy", world.policy,
		"--heartbeat-interval", "1s", "--lease-ttl", "4s"}
	p.cmd = exec.Command(filepath.Join(world.bin, "platform"), p.args...)
	logf, err := os.Create(filepath.Join(b.TempDir(), "platform.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logf.Close() })
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.stop)
	if err := waitPlatform(p.dataDir, p.addr); err != nil {
		b.Fatal(err)
	}
	if p.token, err = adminToken(p.dataDir); err != nil {
		b.Fatal(err)
	}
	return p
}

// benchInstall is install for a benchmark: create the collector through the
// admin API, run the printed Podman install command on the test's dirs.
func benchInstall(b *testing.B, r *benchRig, k *kit) *host {
	b.Helper()
	ctx := context.Background()
	g, err := r.admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: fmt.Sprintf("bench-%d", time.Now().UnixNano())})
	if err != nil {
		b.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range envPair.FindAllStringSubmatch(g.InstallCommands.Podman, -1) {
		vars[m[1]] = m[2]
	}
	h := &host{id: g.Collector.ID, etc: filepath.Join(b.TempDir(), "etc-collector"), state: filepath.Join(b.TempDir(), "state"), kit: k}
	os.MkdirAll(h.etc, 0o700)
	os.MkdirAll(h.state, 0o700)
	cmd := k.cli(h.installArgs(vars)...)
	cmd.Stdin = strings.NewReader(g.EnrollmentToken + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("installer: %v\n%s", err, out)
	}
	eng, err := k.open()
	if err != nil {
		b.Fatal(err)
	}
	h.eng = eng
	b.Cleanup(func() {
		for _, n := range []string{"collector-daemon", "collector-runner"} {
			eng.RemoveContainer(context.Background(), n, true)
		}
		eng.Close()
	})
	return h
}

func benchWait(b *testing.B, what string, d time.Duration, f func() bool) {
	b.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// integration creates an example integration on the rig's collector.
func (r *benchRig) integration(b *testing.B, cfg map[string]any) string {
	b.Helper()
	raw, _ := json.Marshal(cfg)
	in, err := r.admin.CreateIntegration(context.Background(), api.IntegrationRequest{
		Name: fmt.Sprintf("bench-%d", time.Now().UnixNano()), Image: world.exampleImage, Config: raw,
		SecretFields: []string{"token"}, IntervalSec: 86400, CollectorID: r.h.id, Network: "host"})
	if err != nil {
		b.Fatal(err)
	}
	return in.ID
}

func terminal(state string) bool {
	return state == api.JobSucceeded || state == api.JobFailed || state == api.JobDead || state == api.JobCanceled
}

// waitJob polls the job through the admin API until it ends.
func (r *benchRig) waitJob(b *testing.B, id string, d time.Duration, every time.Duration) *api.Job {
	b.Helper()
	deadline := time.Now().Add(d)
	for {
		j, err := r.admin.Job(context.Background(), id)
		if err == nil && terminal(j.State) {
			return j
		}
		if time.Now().After(deadline) {
			b.Fatalf("job %s not finished after %v (last: %+v, %v)", id, d, j, err)
		}
		time.Sleep(every)
	}
}

// runOK runs the integration now and waits for the job to succeed.
func (r *benchRig) runOK(b *testing.B, integ string, d time.Duration) (t0 time.Time, j *api.Job) {
	b.Helper()
	t0 = time.Now()
	q, err := r.admin.RunIntegration(context.Background(), integ)
	if err != nil {
		b.Fatal(err)
	}
	j = r.waitJob(b, q.ID, d, 10*time.Millisecond)
	if j.State != api.JobSucceeded {
		logs, _ := r.admin.JobLogs(context.Background(), j.ID)
		b.Fatalf("job %+v\nlogs:\n%s", j, logs)
	}
	return t0, j
}

// startEvents streams Podman's container start events (the libpod events
// API over the service's socket) and returns, per job ID label, the
// engine's own timestamp of the start.
func startEvents(b *testing.B, socket string) func(jobID string, d time.Duration) (time.Time, bool) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	filters, _ := json.Marshal(map[string][]string{"type": {"container"}, "event": {"start"}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v4.0.0/libpod/events?stream=true&filters="+url.QueryEscape(string(filters)), nil)
	resp, err := hc.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("podman events: %v %v", err, resp)
	}
	var mu sync.Mutex
	seen := map[string]time.Time{}
	cond := sync.NewCond(&mu)
	go func() {
		defer resp.Body.Close()
		dec := json.NewDecoder(bufio.NewReader(resp.Body))
		for {
			var ev struct {
				Action, Status string
				TimeNano       int64 `json:"timeNano"`
				Actor          struct{ Attributes map[string]string }
			}
			if err := dec.Decode(&ev); err != nil {
				return
			}
			if id := ev.Actor.Attributes["io.collector.job"]; id != "" && (ev.Action == "start" || ev.Status == "start") {
				mu.Lock()
				seen[id] = time.Unix(0, ev.TimeNano)
				cond.Broadcast()
				mu.Unlock()
			}
		}
	}()
	return func(jobID string, d time.Duration) (time.Time, bool) {
		timer := time.AfterFunc(d, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
		defer timer.Stop()
		deadline := time.Now().Add(d)
		mu.Lock()
		defer mu.Unlock()
		for {
			if t, ok := seen[jobID]; ok {
				return t, true
			}
			if time.Now().After(deadline) {
				return time.Time{}, false
			}
			cond.Wait()
		}
	}
}

// pct is the nearest-rank percentile of durations, in ms.
func pct(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return ms(s[max(i, 0)])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fmtMS(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = strconv.FormatFloat(ms(d), 'f', 0, 64)
	}
	return strings.Join(parts, " ")
}

// pickupSamples is the number of jobs timed per b.N.
const pickupSamples = 30

// BenchmarkPickupToStart times `jobs run` (the admin API, in process) to
// the job container started, as Podman's start event stamps it; the
// platform's StartedAt (set when the runner reports the container
// started) is reported alongside.
func BenchmarkPickupToStart(b *testing.B) {
	benchNeed(b)
	r := newBenchRig(b)
	integ := r.integration(b, map[string]any{"count": 1, "token": "bench-token"})
	// Warm-up: the first run pulls the image, and the scheduler may have
	// queued a first job already.
	r.runOK(b, integ, 3*time.Minute)
	started := startEvents(b, r.h.kit.socket)

	var pickup, marked []time.Duration
	b.ResetTimer()
	for range b.N * pickupSamples {
		t0, j := r.runOK(b, integ, time.Minute)
		if j.Records != 2 {
			b.Errorf("job %s: %d records, want 2 (1 + the proof)", j.ID, j.Records)
		}
		if at, ok := started(j.ID, 10*time.Second); ok {
			pickup = append(pickup, at.Sub(t0))
		} else {
			b.Errorf("no start event for job %s", j.ID)
		}
		if j.StartedAt != nil {
			marked = append(marked, j.StartedAt.Sub(t0))
		}
	}
	b.StopTimer()
	if len(pickup) == 0 {
		b.Fatal("no samples")
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(pct(pickup, 50), "p50-ms")
	b.ReportMetric(pct(pickup, 99), "p99-ms")
	b.ReportMetric(pct(marked, 50), "startedat-p50-ms")
	b.ReportMetric(pct(marked, 99), "startedat-p99-ms")
	b.Logf("pickup→container start (podman event), ms: %s", fmtMS(pickup))
	b.Logf("pickup→job StartedAt (platform), ms: %s", fmtMS(marked))
}

// wallSamples is the number of (collector, podman run) pairs per b.N.
const wallSamples = 20

// BenchmarkJobWallTime compares a job through the collector (`jobs run`
// to the platform's FinishedAt of the succeeded job) with `podman run --rm
// --network host` of the same image by digest, its config bind-mounted, on
// the same Podman store, interleaved.
func BenchmarkJobWallTime(b *testing.B) {
	benchNeed(b)
	r := newBenchRig(b)
	cfg := map[string]any{"count": 1, "token": "bench-token"}
	integ := r.integration(b, cfg)
	r.runOK(b, integ, 3*time.Minute)
	image := exampleDigestRef(b, r)
	cfgFile := filepath.Join(b.TempDir(), "config.json")
	raw, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	plain := func() time.Duration {
		t0 := time.Now()
		out, err := r.h.kit.run("run", "--rm", "--network", "host", "-v", cfgFile+":/run/collector/config.json:ro", image)
		d := time.Since(t0)
		if err != nil || !strings.Contains(out, "example-secret-proof") {
			b.Fatalf("podman run: %v\n%s", err, out)
		}
		return d
	}
	viaCollector := func() time.Duration {
		t0, j := r.runOK(b, integ, time.Minute)
		if j.Records != 2 {
			b.Errorf("job %s: %d records, want 2 (1 + the proof)", j.ID, j.Records)
		}
		return j.FinishedAt.Sub(t0)
	}
	plain() // warm the CLI's caches too

	var coll, base []time.Duration
	b.ResetTimer()
	for i := range b.N * wallSamples {
		if i%2 == 0 {
			coll = append(coll, viaCollector())
			base = append(base, plain())
		} else {
			base = append(base, plain())
			coll = append(coll, viaCollector())
		}
	}
	b.StopTimer()
	c50, p50 := pct(coll, 50), pct(base, 50)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(c50, "collector-p50-ms")
	b.ReportMetric(p50, "podman-run-p50-ms")
	b.ReportMetric(c50/p50, "ratio")
	b.Logf("collector (jobs run → FinishedAt), ms: %s", fmtMS(coll))
	b.Logf("podman run --rm, ms: %s", fmtMS(base))
}

// exampleDigestRef is the example image's name@sha256 reference, as the
// runner pulled it.
func exampleDigestRef(b *testing.B, r *benchRig) string {
	img, err := r.h.eng.InspectImage(context.Background(), world.exampleImage)
	if err != nil {
		b.Fatal(err)
	}
	repo, _, _ := strings.Cut(world.exampleImage, ":e2e")
	for _, d := range img.RepoDigests {
		if strings.HasPrefix(d, repo+"@sha256:") {
			return d
		}
	}
	b.Fatalf("no digest reference of %s in %v", world.exampleImage, img.RepoDigests)
	return ""
}

// procStatus reads one "Key: N kB" field of /proc/<pid>/status, in bytes.
func procStatus(pid int, key string) (int64, error) {
	return procKB(fmt.Sprintf("/proc/%d/status", pid), key)
}

// procKB reads one "Key: N kB" field of a /proc file, in bytes.
func procKB(path, key string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("%s has no %s", path, key)
}

// containerPid is the host PID of a container's main process.
func containerPid(b *testing.B, k *kit, name string) int {
	b.Helper()
	out, err := k.run("inspect", "--format", "{{.State.Pid}}", name)
	pid, perr := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || perr != nil || pid <= 0 {
		b.Fatalf("pid of %s: %v %v %q", name, err, perr, out)
	}
	return pid
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// million is the record count of BenchmarkMillionEntities.
const million = 1_000_000

// BenchmarkMillionEntities sends a million entities from the example
// integration through a freshly installed runner to the platform, twice
// in the same run: records on stdout (through the engine's log path: the
// baseline, as an integration without the SDK writes them) and through
// the records channel (as the SDK writes them). It reports each run's
// records per second and CPU, and the ratio channel/stdout.
func BenchmarkMillionEntities(b *testing.B) {
	benchNeed(b)
	r := newBenchRig(b)
	pid := containerPid(b, r.h.kit, "collector-runner")
	idleHWM, _ := procStatus(pid, "VmHWM")
	rate := map[string]float64{}
	for _, path := range []string{"stdout", "channel"} {
		b.Run(path, func(b *testing.B) {
			rate[path] = r.millionRun(b, pid, map[string]any{"count": million, "token": "bench-token", "stdout": path == "stdout", "prefix": path + "-"})
		})
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(mib(idleHWM), "runner-idle-peak-MiB")
	if rate["stdout"] > 0 {
		b.ReportMetric(rate["channel"]/rate["stdout"], "channel/stdout")
		b.Logf("records/s (run..succeeded): stdout %.0f, channel %.0f: ratio %.2f", rate["stdout"], rate["channel"], rate["channel"]/rate["stdout"])
	}
}

// millionRun runs one million-entity job of the example with cfg and
// returns its records per second, run..succeeded.
func (r *benchRig) millionRun(b *testing.B, pid int, cfg map[string]any) float64 {
	ctx := context.Background()
	integ := r.integration(b, cfg)
	platformPid := r.p.cmd.Process.Pid
	servicePid := podmanServicePid()
	cpu0 := map[string]float64{"runner": testutil.CPUSeconds(pid), "platform": testutil.CPUSeconds(platformPid), "podman-service": testutil.CPUSeconds(servicePid), "machine": testutil.MachineCPUSeconds()}
	b.ResetTimer()
	t0 := time.Now()
	q, err := r.admin.RunIntegration(ctx, integ)
	if err != nil {
		b.Fatal(err)
	}
	j := r.waitJob(b, q.ID, 15*time.Minute, 50*time.Millisecond)
	wall := time.Since(t0)
	b.StopTimer()
	if j.State != api.JobSucceeded {
		logs, _ := r.admin.JobLogs(ctx, j.ID)
		b.Fatalf("job %+v\nlogs:\n%s", j, logs)
	}
	if pid2 := containerPid(b, r.h.kit, "collector-runner"); pid2 != pid {
		b.Fatalf("the runner restarted during the run (pid %d → %d)", pid, pid2)
	}
	peak, err := procStatus(pid, "VmHWM")
	if err != nil {
		b.Fatal(err)
	}
	platformPeak, _ := procStatus(platformPid, "VmHWM")
	cpu := map[string]float64{"runner": testutil.CPUSeconds(pid), "platform": testutil.CPUSeconds(platformPid), "podman-service": testutil.CPUSeconds(servicePid), "machine": testutil.MachineCPUSeconds()}
	for k := range cpu {
		cpu[k] -= cpu0[k]
	}
	// The rest of the machine's busy time is mostly the integration's
	// container (and conmon, the kernel's network and disk work).
	rest := cpu["machine"] - cpu["runner"] - cpu["platform"] - cpu["podman-service"]
	b.Logf("CPU seconds during the run: runner %.1f, platform %.1f, podman service %.1f, everything else %.1f; machine %.1f",
		cpu["runner"], cpu["platform"], cpu["podman-service"], rest, cpu["machine"])
	b.ReportMetric(cpu["machine"], "machine-cpu-s")
	if j.Records != million+1 {
		b.Errorf("job reports %d records, want %d", j.Records, million+1)
	}
	n, err := liveEntities(r.p.dataDir, integ)
	if err != nil {
		b.Errorf("count entities: %v", err)
	} else if n != million+1 {
		b.Errorf("the platform holds %d live entities, want %d (+1 proof)", n, million+1)
	}
	run := j.FinishedAt.Sub(*j.StartedAt)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(j.Records)/run.Seconds(), "records/s-started..finished")
	b.ReportMetric(float64(j.Records)/wall.Seconds(), "records/s-run..succeeded")
	b.ReportMetric(mib(peak), "runner-peak-MiB")
	b.ReportMetric(mib(platformPeak), "platform-peak-MiB")
	b.ReportMetric(cpu["podman-service"], "podman-service-cpu-s")
	b.Logf("job %s: %d records, %d refused, started..finished %v, run..succeeded %v, job peak memory %.1f MiB, entities counted %d",
		j.ID, j.Records, j.RefusedRecords, run, wall, mib(j.PeakMemoryBytes), n)
	return float64(j.Records) / wall.Seconds()
}

// podmanServicePid finds the harness's `podman system service` by its socket.
func podmanServicePid() int {
	for _, pid := range pids() {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if c := string(cmd); strings.Contains(c, "service") && strings.Contains(c, world.podman.Socket) {
			return pid
		}
	}
	return 0
}

// liveEntities counts an integration's live entities in the platform's
// database, opened read-only.
func liveEntities(dataDir, integ string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "platform.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRow(`SELECT count(*) FROM data_entities WHERE integration_id = ? AND deleted_at IS NULL`, integ).Scan(&n)
	return n, err
}

// BenchmarkIdleRSS reads the resident memory of collector-daemon's and
// collector-runner's main processes after install and a few heartbeats.
func BenchmarkIdleRSS(b *testing.B) {
	benchNeed(b)
	r := newBenchRig(b)
	benchWait(b, "5 heartbeats", time.Minute, func() bool {
		hb, err := r.admin.Heartbeats(context.Background(), r.h.id)
		return err == nil && len(hb) >= 5
	})
	// Idle: once both roles gave back what only their start used
	// (cmd/collector settleTime; they log it), and a few heartbeats more.
	for _, name := range []string{"collector-daemon", "collector-runner"} {
		benchWait(b, name+" gave back its start's memory", time.Minute, func() bool {
			logs, _ := r.h.kit.run("logs", name)
			return strings.Contains(logs, "gave back the memory of the start")
		})
	}
	beats := 0
	if hb, err := r.admin.Heartbeats(context.Background(), r.h.id); err == nil {
		beats = len(hb)
	}
	benchWait(b, "3 heartbeats after", time.Minute, func() bool {
		hb, err := r.admin.Heartbeats(context.Background(), r.h.id)
		return err == nil && len(hb) >= beats+3
	})
	rss, pss := map[string]int64{}, map[string]int64{}
	for _, name := range []string{"collector-daemon", "collector-runner"} {
		pid := containerPid(b, r.h.kit, name)
		n, err := procStatus(pid, "VmRSS")
		if err != nil {
			b.Fatal(err)
		}
		rss[name] = n
		// PSS splits the pages the two share (the same binary's text).
		pss[name], _ = procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss")
		var parts []string
		for _, key := range []string{"VmHWM", "RssAnon", "RssFile"} {
			v, _ := procStatus(pid, key)
			parts = append(parts, fmt.Sprintf("%s %.1f MiB", key, mib(v)))
		}
		// The container's cgroup: its processes' memory and the page cache
		// charged to it (the executable's pages its start read among them).
		stats, err := r.h.kit.run("stats", "--no-stream", "--format", "{{.MemUsage}}", name)
		if err != nil {
			b.Fatalf("podman stats %s: %v", name, err)
		}
		b.Logf("%s: VmRSS %.1f MiB (%s), PSS %.1f MiB; podman stats %s", name, mib(n), strings.Join(parts, ", "), mib(pss[name]), strings.TrimSpace(stats))
	}
	b.ReportMetric(mib(pss["collector-daemon"]+pss["collector-runner"]), "sum-PSS-MiB")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(mib(rss["collector-daemon"]), "daemon-MiB")
	b.ReportMetric(mib(rss["collector-runner"]), "runner-MiB")
	b.ReportMetric(mib(rss["collector-daemon"]+rss["collector-runner"]), "sum-MiB")
}
