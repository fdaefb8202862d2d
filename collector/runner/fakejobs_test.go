package runner_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/selinux"
)

// The tests in this file run the runner on the in-memory engine and job
// API: no root, no Podman, and they never skip. Each ends by checking,
// with goleak, that nothing the runner started is left once Run returned.

// fakeRig is a runner on a fakeEngine and a fakePlatform.
type fakeRig struct {
	t       *testing.T
	cfg     runner.Config
	eng     *fakeEngine
	engine  runner.Engine // what the runner is given: eng unless a test wraps it
	images  runner.Images // fakeImages unless a test sets it
	timeout int64         // the jobs' time limit in seconds
	plat    *fakePlatform
	logs    *testutil.Buffer
	platKey ed25519.PrivateKey
	cancel  context.CancelFunc
	stopped chan struct{}
	run     *runner.Runner
}

func newFakeRig(t *testing.T) *fakeRig {
	leaks := goleak.IgnoreCurrent()
	cfg := runner.DefaultConfig()
	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	cfg.CollectorID, cfg.HPKEKey, cfg.PlatformKey, cfg.StateDir = "col_test", hk, pub, t.TempDir()
	cfg.RetryBackoff, cfg.StatsInterval, cfg.StopTimeout = 5*time.Millisecond, 20*time.Millisecond, 100*time.Millisecond
	r := &fakeRig{t: t, cfg: cfg, eng: newFakeEngine(), plat: newFakePlatform(), logs: &testutil.Buffer{}, platKey: priv}
	r.engine, r.images, r.timeout = r.eng, fakeImages{}, 60
	t.Cleanup(func() {
		r.stop()
		r.eng.shutdown()
		r.eng.wait()
		goleak.VerifyNone(t, leaks)
	})
	return r
}

// start runs the runner until stop.
func (r *fakeRig) start() {
	run, err := runner.New(r.cfg, r.plat, r.engine, r.images, selinux.Labeler{Enabled: new(bool)}, slog.New(slog.NewJSONHandler(r.logs, nil)))
	if err != nil {
		r.t.Fatal(err)
	}
	r.run = run
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.stopped = cancel, make(chan struct{})
	go func() { run.Run(ctx); close(r.stopped) }()
}

// stop ends Run and waits for it to return.
func (r *fakeRig) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.stopped
		r.cancel = nil
	}
}

// lease seals a job of integration integ for the rig's collector; the
// config's token is secret. Each edit changes the job before it is sealed.
func (r *fakeRig) lease(jobID, integ, leaseID string, ttlSec int, cfg map[string]any, edits ...func(*crypto.Job)) *api.Lease {
	conf, _ := json.Marshal(cfg)
	job := &crypto.Job{JobID: jobID, IntegrationID: integ, Image: "registry.example/job:1", Config: conf,
		SecretFields: []string{"token"}, Limits: crypto.Limits{MemoryBytes: 64 << 20, TimeoutSec: r.timeout},
		NotAfter: time.Now().Add(time.Hour)}
	for _, edit := range edits {
		edit(job)
	}
	env, err := crypto.SealEnvelope(job, r.cfg.CollectorID, r.cfg.HPKEKey.PublicKey(), r.platKey)
	if err != nil {
		r.t.Fatal(err)
	}
	return &api.Lease{JobID: jobID, LeaseID: leaseID, LeaseTTLSec: ttlSec, Attempt: 1, Envelope: env}
}

// waitUntil polls cond until it holds, failing the test after 10 s with
// what the engine and the platform saw.
func (r *fakeRig) waitUntil(what string, cond func() bool) {
	r.t.Helper()
	if !poll(10*time.Second, cond) {
		r.t.Fatalf("%s: not after 10 s; engine events %q; platform calls %q; runner log:\n%s", what, r.eng.log(), r.plat.callLog(), r.logs)
	}
}

// nexts returns how many times the runner asked for a job.
func (r *fakeRig) nexts() int {
	r.plat.mu.Lock()
	defer r.plat.mu.Unlock()
	return r.plat.nexts
}

// finished waits for the job's report.
func (r *fakeRig) finished(jobID string) api.FinishRequest {
	r.t.Helper()
	r.waitUntil("job "+jobID+" finished", func() bool { return r.plat.called("finish", jobID, "") })
	r.plat.mu.Lock()
	defer r.plat.mu.Unlock()
	return r.plat.finished[jobID]
}

// gone waits until the job's container and secret are removed.
func (r *fakeRig) gone(jobID string) {
	r.t.Helper()
	r.waitUntil("job "+jobID+" cleaned up", func() bool {
		return !r.eng.hasContainer("collector-job-"+jobID) && !r.eng.hasSecret("collector-job-"+jobID)
	})
}

// records prints n entities, keys from prefix.
func records(w io.Writer, prefix string, n int) {
	for i := range n {
		fmt.Fprintf(w, `{"entity":{"_key":"%s%d","_type":"t","_class":"C"}}`+"\n", prefix, i)
	}
}

// blockUntil is a program that waits for release (or a stop), then prints
// two records and exits 0; stopped, it exits 137.
func blockUntil(release <-chan struct{}) program {
	return func(ctx context.Context, stdout, stderr io.Writer) int {
		fmt.Fprintln(stderr, "waiting")
		select {
		case <-release:
			records(stdout, "k", 2)
			return 0
		case <-ctx.Done():
			return 137
		}
	}
}

// untilStopped is a program that prints before (if not nil) and then runs
// until it is stopped.
func untilStopped(before func(stdout io.Writer)) program {
	return func(ctx context.Context, stdout, stderr io.Writer) int {
		if before != nil {
			before(stdout)
		}
		<-ctx.Done()
		return 137
	}
}

func TestFakeJobRunsAndReports(t *testing.T) {
	r := newFakeRig(t)
	const secret = "fake-secret-value-42"
	r.eng.setProgram("job_ok", func(ctx context.Context, stdout, stderr io.Writer) int {
		fmt.Fprintf(stderr, "using token %q\n", secret)
		records(stdout, "k", 3)
		return 0
	})
	r.plat.push(r.lease("job_ok", "int_ok", "lease-1", 30, map[string]any{"token": secret}))
	r.start()
	fin := r.finished("job_ok")
	if fin.ExitCode != 0 || fin.Error != "" || fin.Records != 3 || fin.PeakMemoryBytes != 8<<20 {
		t.Errorf("finish = %+v, want exit 0, 3 records and the sampled peak", fin)
	}
	r.gone("job_ok")
	r.plat.mu.Lock()
	logs := r.plat.logs["job_ok"].String()
	r.plat.mu.Unlock()
	if strings.Contains(logs, secret) || !strings.Contains(logs, "[REDACTED]") {
		t.Errorf("job logs: %q", logs)
	}
}

// TestHandoverOfAReleasedJob: the platform leases a job again while this
// runner still runs it (its lease expired in an outage): the run goes on
// under the new lease, in its one container, and reports under it.
func TestHandoverOfAReleasedJob(t *testing.T) {
	r := newFakeRig(t)
	release := make(chan struct{})
	r.eng.setProgram("job_h", blockUntil(release))
	r.plat.push(r.lease("job_h", "int_h", "lease-A", 1, map[string]any{"token": "tok-handover"}))
	r.start()
	r.waitUntil("container started", func() bool { return r.eng.has("start collector-job-job_h") })
	again := r.lease("job_h", "int_h", "lease-B", 1, map[string]any{"token": "tok-handover"})
	again.Attempt = 2
	r.plat.push(again)
	r.waitUntil("lease B renewed", func() bool { return r.plat.called("renew", "job_h", "lease-B") })
	close(release)

	fin := r.finished("job_h")
	if fin.LeaseID != "lease-B" || fin.ExitCode != 0 || fin.Error != "" || fin.Records != 2 {
		t.Errorf("finish = %+v, want exit 0 and 2 records under lease-B", fin)
	}
	if r.plat.called("records", "job_h", "lease-A") || r.plat.called("finish", "job_h", "lease-A") {
		t.Errorf("records or finish under the replaced lease: %q", r.plat.callLog())
	}
	creates := slices.DeleteFunc(r.eng.log(), func(e string) bool { return !strings.HasPrefix(e, "create ") })
	if len(creates) != 1 {
		t.Errorf("containers created: %q, want one", creates)
	}
	r.gone("job_h")
}

// TestLeaseLostMidJob: the platform stops honouring the lease (it expired
// and went to another collector, or an operator cancelled the job): the
// container is stopped and removed, and nothing is reported under the old
// lease.
func TestLeaseLostMidJob(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"lease lost", &api.Error{Status: 409, Code: api.CodeLeaseLost, Message: "lease lost"}},
		{"job gone", &api.Error{Status: 404, Code: api.CodeNotFound, Message: "no such job"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFakeRig(t)
			r.eng.setProgram("job_l", untilStopped(nil))
			r.plat.renewErr = func(jobID, leaseID string) error {
				if r.eng.has("start collector-job-job_l") {
					return c.err
				}
				return nil
			}
			r.plat.push(r.lease("job_l", "int_l", "lease-A", 1, map[string]any{"token": "tok-lost"}))
			r.start()
			r.waitUntil("container stopped", func() bool { return r.eng.has("stop collector-job-job_l") })
			r.gone("job_l")
			r.stop() // nothing can report after Run returned
			for _, op := range []string{"finish", "records", "logs"} {
				if r.plat.called(op, "job_l", "") {
					t.Errorf("%s reported after the lease was lost: %q", op, r.plat.callLog())
				}
			}
		})
	}
}

// TestRenewalFailingForAWhileKeepsTheJob: renewals the platform cannot
// answer for a while (503) are retried; the job runs on and reports.
func TestRenewalFailingForAWhileKeepsTheJob(t *testing.T) {
	r := newFakeRig(t)
	release := make(chan struct{})
	r.eng.setProgram("job_w", blockUntil(release))
	var failures atomic.Int32
	r.plat.renewErr = func(jobID, leaseID string) error {
		if failures.Add(1) <= 2 {
			return &api.Error{Status: 503, Code: api.CodeUnavailable, Message: "try later"}
		}
		return nil
	}
	r.plat.push(r.lease("job_w", "int_w", "lease-1", 1, map[string]any{"token": "tok-renew"}))
	r.start()
	r.waitUntil("a renewal after the failures", func() bool { return failures.Load() > 2 })
	close(release)
	if fin := r.finished("job_w"); fin.Error != "" || fin.Records != 2 {
		t.Errorf("finish = %+v, want a success", fin)
	}
	if !strings.Contains(r.logs.String(), "lease renewal failed; retrying") {
		t.Errorf("the failed renewals were not logged:\n%s", r.logs)
	}
}

// TestRunnerStopMidJob: the runner stopping (SIGTERM) stops the job's
// container, removes it and its secret, reports nothing (the lease expires
// and the job runs again), and leaves no goroutine.
func TestRunnerStopMidJob(t *testing.T) {
	r := newFakeRig(t)
	r.eng.setProgram("job_s", untilStopped(nil))
	r.plat.push(r.lease("job_s", "int_s", "lease-1", 30, map[string]any{"token": "tok-stop"}))
	r.start()
	r.waitUntil("container started", func() bool { return r.eng.has("start collector-job-job_s") })
	r.stop()
	if !r.eng.has("stop collector-job-job_s") || r.eng.hasContainer("collector-job-job_s") || r.eng.hasSecret("collector-job-job_s") {
		t.Errorf("after the runner stopped: events %q, secret left %v", r.eng.log(), r.eng.hasSecret("collector-job-job_s"))
	}
	if r.plat.called("finish", "job_s", "") {
		t.Errorf("a job cut by the runner stopping was reported: %q", r.plat.callLog())
	}
}

// TestRecordsUploadFailingForGoodStopsTheJob: a records batch the platform
// refuses for good stops the container at once (not at the job's timeout)
// and fails the job.
func TestRecordsUploadFailingForGoodStopsTheJob(t *testing.T) {
	r := newFakeRig(t)
	r.cfg.BatchRecords = 5
	r.eng.setProgram("job_r", untilStopped(func(stdout io.Writer) { records(stdout, "k", 6) }))
	r.plat.recordsErr = func(jobID, leaseID string, seq int) error {
		return &api.Error{Status: 400, Code: api.CodeInvalidRequest, Message: "bad batch"}
	}
	r.plat.push(r.lease("job_r", "int_r", "lease-1", 30, map[string]any{"token": "tok-records"}))
	r.start()
	fin := r.finished("job_r")
	if fin.ExitCode != -1 || !strings.Contains(fin.Error, "stream records (the job was stopped)") || !strings.Contains(fin.Error, "bad batch") {
		t.Errorf("finish = %+v, want the records failure", fin)
	}
	if !r.eng.has("stop collector-job-job_r") {
		t.Errorf("the container was not stopped: %q", r.eng.log())
	}
	r.gone("job_r")
}

// TestOutOfMemoryIsReported: a job the engine killed at its memory limit
// is reported as out of memory (exit 137 and OOMKilled), so the platform
// predicts its limit next time; one that exits 137 by itself, with memory
// to spare, is a plain failure.
func TestOutOfMemoryIsReported(t *testing.T) {
	r := newFakeRig(t)
	r.eng.setProgram("job_oom", func(ctx context.Context, stdout, stderr io.Writer) int { return 137 })
	r.eng.setProgram("job_137", func(ctx context.Context, stdout, stderr io.Writer) int { return 137 })
	r.eng.mu.Lock()
	r.eng.oom["job_oom"] = true
	r.eng.mu.Unlock()
	r.plat.push(r.lease("job_oom", "int_oom", "lease-1", 30, map[string]any{}))
	r.plat.push(r.lease("job_137", "int_137", "lease-2", 30, map[string]any{}))
	r.start()
	fin := r.finished("job_oom")
	if fin.ExitCode != 137 || !fin.OOMKilled || !strings.Contains(fin.Error, "out of memory") {
		t.Errorf("finish of the killed job = %+v, want 137, OOMKilled and the reason", fin)
	}
	fin = r.finished("job_137")
	if fin.ExitCode != 137 || fin.OOMKilled || strings.Contains(fin.Error, "out of memory") {
		t.Errorf("finish of the job that exited 137 = %+v, want a plain failure", fin)
	}
}

// TestDrainLetsRunningJobsFinish: drained (SIGUSR1, before the daemon
// replaces it), the runner leases nothing more, lets the job it runs
// finish and report, and then returns; a job queued meanwhile stays on the
// platform for the next runner.
func TestDrainLetsRunningJobsFinish(t *testing.T) {
	r := newFakeRig(t)
	release := make(chan struct{})
	r.eng.setProgram("job_d", blockUntil(release))
	r.plat.push(r.lease("job_d", "int_d", "lease-1", 30, map[string]any{"token": "tok-drain"}))
	r.start()
	r.waitUntil("container started", func() bool { return r.eng.has("start collector-job-job_d") })
	r.run.Drain()
	r.run.Drain() // twice is once
	r.plat.push(r.lease("job_later", "int_later", "lease-2", 30, map[string]any{}))
	select {
	case <-r.stopped:
		t.Fatal("Run returned with a job still running")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	fin := r.finished("job_d")
	if fin.ExitCode != 0 || fin.Records != 2 {
		t.Errorf("the drained job's finish = %+v, want exit 0 and its 2 records", fin)
	}
	select {
	case <-r.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return once drained")
	}
	r.cancel = nil
	if r.eng.has("create collector-job-job_later") || r.plat.called("running", "job_later", "") {
		t.Errorf("a drained runner took a new job: %q", r.eng.log())
	}
	r.gone("job_d")
}

// TestJobTimedOutIsStopped: a job past its time limit is stopped and
// fails, saying so.
// With the records channel (channel: true) the integration holds the
// FIFO open and writes nothing more: the reading ends with the run (no
// goroutine waits on the FIFO: the rig checks).
func TestJobTimedOutIsStopped(t *testing.T) {
	for _, channel := range []bool{false, true} {
		t.Run(fmt.Sprintf("channel=%v", channel), func(t *testing.T) {
			r := newFakeRig(t)
			r.eng.channel = channel
			r.timeout = 1
			r.eng.setProgram("job_t", untilStopped(func(stdout io.Writer) { records(stdout, "k", 3) }))
			r.plat.push(r.lease("job_t", "int_t", "lease-1", 30, map[string]any{"token": "tok-timeout"}))
			r.start()
			fin := r.finished("job_t")
			if fin.ExitCode != -1 || fin.Error != "job timed out after 1s and was stopped" {
				t.Errorf("finish = %+v, want a timeout", fin)
			}
			if !r.eng.has("stop collector-job-job_t") {
				t.Errorf("the container was not stopped: %q", r.eng.log())
			}
			r.gone("job_t")
		})
	}
}

// TestLeftoversCleanedAtStartOnFake: what a crashed runner of this
// collector left (a container, secrets, a job recorded in flight) is
// removed before the runner asks for a job; another collector's container
// is left alone.
func TestLeftoversCleanedAtStartOnFake(t *testing.T) {
	r := newFakeRig(t)
	ctx := context.Background()
	mine := map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelCollector: r.cfg.CollectorID, runner.LabelJob: "job_left"}
	other := map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelCollector: "col_other", runner.LabelJob: "job_other"}
	for _, name := range []string{"collector-job-job_left", "collector-job-job_inflight"} {
		if err := r.eng.CreateSecret(ctx, name, []byte(`{"token":"x"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for name, labels := range map[string]map[string]string{"collector-job-job_left": mine, "collector-job-job_other": other} {
		spec := &engine.ContainerSpec{Name: name, Labels: labels}
		if name == "collector-job-job_left" {
			spec.Secrets = []engine.SecretMount{{Name: name}}
		}
		if _, err := r.eng.CreateContainer(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	r.eng.StartContainer(ctx, "collector-job-job_left")
	os.MkdirAll(filepath.Join(r.cfg.StateDir, "inflight"), 0o700)
	if err := os.WriteFile(filepath.Join(r.cfg.StateDir, "inflight", "job_inflight"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.waitUntil("the runner asks for jobs", func() bool { return r.nexts() > 0 })
	if r.eng.hasContainer("collector-job-job_left") || r.eng.hasSecret("collector-job-job_left") || r.eng.hasSecret("collector-job-job_inflight") {
		t.Errorf("leftovers still there: events %q", r.eng.log())
	}
	if !r.eng.hasContainer("collector-job-job_other") {
		t.Errorf("another collector's container was removed")
	}
	if left, _ := os.ReadDir(filepath.Join(r.cfg.StateDir, "inflight")); len(left) > 0 {
		t.Errorf("in-flight records left: %v", left)
	}
}

// TestTwoIntegrationsInParallelNeverTwoJobsOfOne: jobs of two integrations
// run at once; a second job of one of them (whichever of the two started
// second) waits for the first to end, reported and cleaned up, before it
// starts.
func TestTwoIntegrationsInParallelNeverTwoJobsOfOne(t *testing.T) {
	r := newFakeRig(t)
	rel := map[string]chan struct{}{"a1": make(chan struct{}), "b1": make(chan struct{}), "a2": make(chan struct{})}
	for id, ch := range rel {
		r.eng.setProgram(id, blockUntil(ch))
	}
	r.plat.push(r.lease("a1", "int_a", "lease-a1", 30, map[string]any{"token": "tok-a1"}))
	r.plat.push(r.lease("b1", "int_b", "lease-b1", 30, map[string]any{"token": "tok-b1"}))
	r.plat.push(r.lease("a2", "int_a", "lease-a2", 30, map[string]any{"token": "tok-a2"}))
	r.start()
	first, second := "", ""
	r.waitUntil("a job of each integration running", func() bool {
		switch {
		case r.eng.has("start collector-job-a1"):
			first, second = "a1", "a2"
		case r.eng.has("start collector-job-a2"):
			first, second = "a2", "a1"
		}
		return first != "" && r.eng.has("start collector-job-b1")
	})
	r.waitUntil("all three leased", func() bool {
		r.plat.mu.Lock()
		defer r.plat.mu.Unlock()
		return len(r.plat.queue) == 0
	})
	if r.eng.has("create collector-job-" + second) {
		t.Fatalf("%s started while %s of the same integration ran: %q", second, first, r.eng.log())
	}
	close(rel[first])
	r.finished(first)
	r.waitUntil(second+" started", func() bool { return r.eng.has("start collector-job-" + second) })
	close(rel["b1"])
	close(rel[second])
	for _, id := range []string{first, "b1", second} {
		if fin := r.finished(id); fin.Error != "" {
			t.Errorf("%s: %+v", id, fin)
		}
	}
	ev := r.eng.log()
	if slices.Index(ev, "remove collector-job-"+first) > slices.Index(ev, "create collector-job-"+second) {
		t.Errorf("%s created before %s was removed: %q", second, first, ev)
	}
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	if r.eng.maxRunning["int_a"] != 1 || r.eng.maxAll < 2 {
		t.Errorf("at most %d jobs of int_a and %d in all ran at once, want 1 and 2", r.eng.maxRunning["int_a"], r.eng.maxAll)
	}
}

// TestNoGoroutineOutlivesItsJob: once a job is reported and cleaned up,
// nothing it started runs on (lease keeping, stats, log flushing, output
// pumps), while the runner itself goes on.
func TestNoGoroutineOutlivesItsJob(t *testing.T) {
	r := newFakeRig(t)
	r.start()
	r.waitUntil("the runner idles", func() bool { return r.nexts() > 1 })
	idle := goleak.IgnoreCurrent()
	release := make(chan struct{})
	r.eng.setProgram("job_g", blockUntil(release))
	r.plat.push(r.lease("job_g", "int_g", "lease-1", 1, map[string]any{"token": "tok-goroutines"}))
	r.waitUntil("lease renewed", func() bool { return r.plat.called("renew", "job_g", "lease-1") })
	close(release)
	r.finished("job_g")
	r.gone("job_g")
	goleak.VerifyNone(t, idle)
}
