package runner_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine"
)

// The tests in this file stop the fake engine's API as a restart of the
// Podman service or of dockerd does: calls fail, a follow under way is
// cut, and the containers run on.

// twoHalves is a program that prints two records, waits for release (or a
// stop), then prints two more and exits 0; stopped, it exits 137.
func twoHalves(release <-chan struct{}) program {
	return func(ctx context.Context, stdout, stderr io.Writer) int {
		records(stdout, "a", 2)
		fmt.Fprintln(stderr, "first half")
		select {
		case <-release:
		case <-ctx.Done():
			return 137
		}
		records(stdout, "b", 2)
		fmt.Fprintln(stderr, "second half")
		return 0
	}
}

// TestJobFollowedAcrossAnEngineOutage: the engine stops answering while a
// job runs, and the container exits meanwhile; once the engine answers
// again the runner follows the container to its end: the job succeeds
// with each record and log line sent once.
func TestJobFollowedAcrossAnEngineOutage(t *testing.T) {
	r := newFakeRig(t)
	release := make(chan struct{})
	r.eng.setProgram("job_o", twoHalves(release))
	r.plat.push(r.lease("job_o", "int_o", "lease-1", 30, map[string]any{"token": "tok-outage"}))
	r.start()
	r.waitUntil("the first half read", func() bool { return r.eng.caughtUp("collector-job-job_o") })

	r.eng.setDown(true)
	r.waitUntil("the job waits for its engine", func() bool {
		return strings.Contains(r.logs.String(), "container engine unavailable: the job waits for it")
	})
	close(release)
	r.waitUntil("the container exited while the engine was down", func() bool { return r.eng.exited("collector-job-job_o") })
	if r.plat.called("finish", "job_o", "") {
		t.Fatalf("the job was reported while its engine was down: %+v", r.plat.finished["job_o"])
	}
	r.eng.setDown(false)

	fin := r.finished("job_o")
	if fin.ExitCode != 0 || fin.Error != "" || fin.Records != 4 {
		t.Errorf("finish = %+v, want exit 0 and 4 records", fin)
	}
	r.plat.mu.Lock()
	recs, logs := slices.Clone(r.plat.records["job_o"]), r.plat.logs["job_o"].String()
	r.plat.mu.Unlock()
	var keys []string
	for _, l := range recs {
		keys = append(keys, l[strings.Index(l, `"_key":"`)+8:][:2])
	}
	if want := []string{"a0", "a1", "b0", "b1"}; !slices.Equal(keys, want) {
		t.Errorf("records uploaded %q, want %q each once", keys, want)
	}
	if strings.Count(logs, "first half") != 1 || strings.Count(logs, "second half") != 1 {
		t.Errorf("job logs, want each stderr line once:\n%s", logs)
	}
	if !strings.Contains(r.logs.String(), "container engine answers again") {
		t.Errorf("the engine's return was not logged:\n%s", r.logs)
	}
	r.gone("job_o")
}

// TestJobContainerGoneAfterAnEngineOutage: the engine comes back without
// the job's container (lost in its restart): the job fails, saying so.
func TestJobContainerGoneAfterAnEngineOutage(t *testing.T) {
	r := newFakeRig(t)
	r.eng.setProgram("job_v", twoHalves(make(chan struct{})))
	r.plat.push(r.lease("job_v", "int_v", "lease-1", 30, map[string]any{"token": "tok-vanish"}))
	r.start()
	r.waitUntil("job marked running", func() bool { return r.plat.called("running", "job_v", "") })
	r.eng.setDown(true)
	r.waitUntil("the job waits for its engine", func() bool {
		return strings.Contains(r.logs.String(), "container engine unavailable: the job waits for it")
	})
	r.eng.vanish("collector-job-job_v")
	r.eng.setDown(false)

	fin := r.finished("job_v")
	if fin.ExitCode != -1 || !strings.Contains(fin.Error, "job container gone when the container engine came back") {
		t.Errorf("finish = %+v, want the container's loss named", fin)
	}
	r.gone("job_v")
}

// TestEngineAwayPastTheJobTimeout: an engine that does not come back
// within the job's time limit fails the job, saying why; the container it
// could not stop is removed once the engine answers.
func TestEngineAwayPastTheJobTimeout(t *testing.T) {
	r := newFakeRig(t)
	r.timeout = 1
	r.eng.setProgram("job_a", untilStopped(func(stdout io.Writer) { records(stdout, "k", 1) }))
	r.plat.push(r.lease("job_a", "int_a", "lease-1", 30, map[string]any{"token": "tok-away"}))
	r.start()
	r.waitUntil("job marked running", func() bool { return r.plat.called("running", "job_a", "") })
	r.eng.setDown(true)

	fin := r.finished("job_a")
	if fin.ExitCode != -1 || !strings.Contains(fin.Error, "the container engine did not answer again within the job's time limit (1s)") {
		t.Errorf("finish = %+v, want the engine's absence named", fin)
	}
	if !r.eng.hasContainer("collector-job-job_a") {
		t.Fatalf("the container was removed while the engine was down: %q", r.eng.log())
	}
	r.eng.setDown(false)
	r.gone("job_a")
}

// TestCleanupRetriedWhenTheEngineAnswersAgain: the engine stops answering
// as the job ends, so removing its container and secret fails; the
// runner removes them once the engine answers again, without a restart,
// and forgets the job's in-flight record only then.
func TestCleanupRetriedWhenTheEngineAnswersAgain(t *testing.T) {
	r := newFakeRig(t)
	var once sync.Once
	r.eng.before = func(op, name string) {
		if op == "remove" && name == "collector-job-job_c" {
			once.Do(func() { r.eng.setDown(true) })
		}
	}
	r.plat.push(r.lease("job_c", "int_c", "lease-1", 30, map[string]any{"token": "tok-cleanup"}))
	r.start()
	if fin := r.finished("job_c"); fin.ExitCode != 0 || fin.Error != "" {
		t.Errorf("finish = %+v, want a success: the job ended before the engine went", fin)
	}
	if !r.eng.hasContainer("collector-job-job_c") || !r.eng.hasSecret("collector-job-job_c") {
		t.Fatalf("removed while the engine was down? events %q", r.eng.log())
	}
	inflight := filepath.Join(r.cfg.StateDir, "inflight", "job_c")
	if _, err := os.Stat(inflight); err != nil {
		t.Errorf("the job's in-flight record was dropped before its objects were removed: %v", err)
	}
	r.eng.setDown(false)
	r.gone("job_c")
	r.waitUntil("the in-flight record dropped", func() bool {
		_, err := os.Stat(inflight)
		return os.IsNotExist(err)
	})
}

// TestLeftoverSweepRetried: the sweep of what an earlier runner left fails
// half way (the engine goes as it removes): it is made again, and the
// leftover goes once the engine answers.
func TestLeftoverSweepRetried(t *testing.T) {
	r := newFakeRig(t)
	ctx := context.Background()
	const name = "collector-job-job_left"
	if _, err := r.eng.CreateContainer(ctx, &engine.ContainerSpec{Name: name, Labels: map[string]string{
		"io.collector.role": "job", "io.collector.collector": r.cfg.CollectorID, "io.collector.job": "job_left"}}); err != nil {
		t.Fatal(err)
	}
	failed := make(chan struct{})
	var once sync.Once
	r.eng.before = func(op, n string) {
		if op == "remove" && n == name {
			once.Do(func() { r.eng.setDown(true); close(failed) })
		}
	}
	r.start()
	<-failed
	r.waitUntil("the runner sees its engine down", func() bool { return r.eng.failedChecks() > 0 })
	r.eng.setDown(false)
	r.waitUntil("the leftover removed", func() bool { return !r.eng.hasContainer(name) })
}

// outageImages fails its first pull as a pull fails when the engine's
// socket does not answer, and takes the engine down with it; later pulls
// pass once the engine answers.
type outageImages struct {
	eng  *fakeEngine
	once sync.Once
}

func (o *outageImages) VerifyAndPull(ctx context.Context, ref string) (string, error) {
	first := false
	o.once.Do(func() { first = true; o.eng.setDown(true) })
	if err := o.eng.Ping(ctx); first || err != nil {
		return "", fmt.Errorf("pull verified image %s: pull: %w: dial unix /run/podman/podman.sock: connect: connection refused", ref, engine.ErrUnavailable)
	}
	return fakeImages{}.VerifyAndPull(ctx, ref)
}

// TestPullRetriedWhenTheEngineComesBack: a pull that fails because the
// engine does not answer is no refusal of the image: the job waits for the
// engine and runs once it answers.
func TestPullRetriedWhenTheEngineComesBack(t *testing.T) {
	r := newFakeRig(t)
	r.images = &outageImages{eng: r.eng}
	r.plat.push(r.lease("job_p", "int_p", "lease-1", 30, map[string]any{"token": "tok-pull"}))
	r.start()
	r.waitUntil("the job waits for its engine", func() bool {
		return strings.Contains(r.logs.String(), "container engine unavailable: the job waits for it")
	})
	r.eng.setDown(false)
	if fin := r.finished("job_p"); fin.ExitCode != 0 || fin.Error != "" {
		t.Errorf("finish = %+v, want a success", fin)
	}
	r.gone("job_p")
}

// TestPullGivenBackWhenTheEngineStaysAway: an engine that does not answer
// within the runner's wait before a job starts: the job is given back
// (not reported: its lease expires and it runs again), never reported as
// an image refusal, and nothing of it was created.
func TestPullGivenBackWhenTheEngineStaysAway(t *testing.T) {
	r := newFakeRig(t)
	r.cfg.EngineWait = 50 * time.Millisecond
	r.images = &outageImages{eng: r.eng}
	r.plat.push(r.lease("job_g", "int_g", "lease-1", 30, map[string]any{"token": "tok-giveback"}))
	r.start()
	r.waitUntil("the job given back", func() bool { return strings.Contains(r.logs.String(), "job given back") })
	r.stop()
	if r.plat.called("finish", "job_g", "") {
		t.Errorf("a job given back was reported: %+v", r.plat.finished["job_g"])
	}
	if strings.Contains(r.logs.String(), "refused, nothing ran") {
		t.Errorf("an unreachable engine was taken for an image refusal:\n%s", r.logs)
	}
	if r.eng.has("create collector-job-job_g") {
		t.Errorf("a container was created: %q", r.eng.log())
	}
}

// TestStartRetriedWhenTheEngineComesBack: the engine goes as the job's
// container is started (created, its start cut): once the engine answers,
// the runner replaces what the cut try left and runs the job once.
func TestStartRetriedWhenTheEngineComesBack(t *testing.T) {
	r := newFakeRig(t)
	var once sync.Once
	r.eng.before = func(op, name string) {
		if op == "start" && name == "collector-job-job_st" {
			once.Do(func() { r.eng.setDown(true) })
		}
	}
	r.plat.push(r.lease("job_st", "int_st", "lease-1", 30, map[string]any{"token": "tok-start"}))
	r.start()
	r.waitUntil("the job waits for its engine", func() bool {
		return strings.Contains(r.logs.String(), "container engine unavailable: the job waits for it")
	})
	r.eng.setDown(false)
	if fin := r.finished("job_st"); fin.ExitCode != 0 || fin.Error != "" {
		t.Errorf("finish = %+v, want a success", fin)
	}
	if !strings.Contains(r.logs.String(), "removing a container this job left earlier") {
		t.Errorf("the container the cut try created was not replaced:\n%s", r.logs)
	}
	starts := slices.DeleteFunc(r.eng.log(), func(e string) bool { return e != "start collector-job-job_st" })
	if len(starts) != 1 {
		t.Errorf("container started %d times, want once: %q", len(starts), r.eng.log())
	}
	r.gone("job_st")
}

// TestOutputChangedAcrossAnOutageFailsTheJob: the engine comes back with
// another log than the one read before its outage: the job fails as an
// incomplete log; nothing is uploaded twice.
func TestOutputChangedAcrossAnOutageFailsTheJob(t *testing.T) {
	r := newFakeRig(t)
	release := make(chan struct{})
	r.eng.setProgram("job_x", twoHalves(release))
	r.plat.push(r.lease("job_x", "int_x", "lease-1", 30, map[string]any{"token": "tok-garbled"}))
	r.start()
	r.waitUntil("the first half read", func() bool { return r.eng.caughtUp("collector-job-job_x") })
	r.eng.setDown(true)
	r.waitUntil("the job waits for its engine", func() bool {
		return strings.Contains(r.logs.String(), "container engine unavailable: the job waits for it")
	})
	r.eng.rewrite("collector-job-job_x", []byte(`{"entity":{"_key":"zz","_type":"t","_class":"C"}}`+"\n"))
	close(release)
	r.eng.setDown(false)
	fin := r.finished("job_x")
	if !strings.Contains(fin.Error, "container log incomplete") || !strings.Contains(fin.Error, "lines were lost or garbled") {
		t.Errorf("finish = %+v, want the log's change named", fin)
	}
	r.plat.mu.Lock()
	recs := slices.Clone(r.plat.records["job_x"])
	r.plat.mu.Unlock()
	if len(recs) > 2 || slices.ContainsFunc(recs, func(l string) bool { return strings.Contains(l, `"zz"`) }) {
		t.Errorf("records uploaded %q: the changed log was taken", recs)
	}
	r.gone("job_x")
}
