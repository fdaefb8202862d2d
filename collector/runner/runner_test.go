package runner_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/enginetest"
	"github.com/collectorhq/collector/engine/podman"
	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/selinux"
)

var env struct {
	stack    *enginetest.Stack
	dir      string
	podman   *enginetest.Podman
	registry *enginetest.Registry
	image    string // the job image: busybox with a script as its command
}

// jobScript is the test integration: it echoes its config to stderr (the
// runner must redact the secret), prints three entities (pausing after the
// first when the config says pause), then a line that is not a record
// when the config says bad, and exits 3 when it says fail. In validate
// mode it writes a passed result whose check holds the config (the
// runner must redact the secret there too), or, told to fail, a failed
// one and exits 3.
const jobScript = `if [ "$COLLECTOR_INTEGRATION_MODE" = validate ]; then
if grep -q '"fail":true' /run/collector/config.json; then echo '{"validation":{"ok":false,"reason":"auth","error":"invalid credentials"}}'; exit 3; fi
echo "{\"validation\":{\"ok\":true,\"checks\":[{\"name\":\"bind\",\"detail\":\"$(tr -d '"{}' < /run/collector/config.json)\"}]}}"; exit 0; fi
cat /run/collector/config.json >&2; echo >&2
for i in 1 2 3; do echo "{\"entity\":{\"_key\":\"k$i\",\"_type\":\"t\",\"_class\":\"C\"}}"
if [ $i = 1 ] && grep -q '"pause":true' /run/collector/config.json; then echo pausing >&2; seq 10000 10400 >&2; sleep ` + pauseSeconds + `; fi; done
if grep -q '"bad":true' /run/collector/config.json; then echo 'not a record'; fi
if grep -q '"fail":true' /run/collector/config.json; then echo failing >&2; exit 3; fi`

// pauseSeconds is how long a job that says pause sleeps after its first
// record: long enough for a test to stop and start the engine meanwhile.
// It logs "pausing", then 2 KB more: a follow of Podman's log holds its
// last line back (engine.FollowStored), and the logs' redaction the
// length of the longest secret form.
const pauseSeconds = "8"

func TestMain(m *testing.M) { enginetest.Main(m, "runner", setup, teardown) }

func setup() error {
	s, err := enginetest.StartStack("collector-runner-", false)
	env.stack = s
	if err != nil {
		return err
	}
	env.registry, env.podman, env.dir = s.Registry, s.Podman, s.Dir
	if _, err = enginetest.BuildTestImage(env.podman, env.registry.Addr); err != nil {
		return err
	}
	ctxDir := filepath.Join(env.dir, "jobimage")
	os.MkdirAll(ctxDir, 0o755)
	script, _ := json.Marshal([]string{"/bin/sh", "-c", jobScript})
	cf := "FROM localhost/collector-test/busybox:1\nUSER 1000:1000\nCMD " + string(script) + "\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte(cf), 0o644); err != nil {
		return err
	}
	if _, err := env.podman.Run("build", "--quiet", "-t", "localhost/collector-test/job:1", ctxDir); err != nil {
		return err
	}
	env.image = env.registry.Addr + "/collector-test/job:1"
	_, err = env.podman.Run("push", "--quiet", "--tls-verify=false", "localhost/collector-test/job:1", "docker://"+env.image)
	return err
}

func teardown() { env.stack.Stop() }

// pullOnly stands in for the signature check (tested in trust/): it pulls
// and returns the digest reference, and counts its calls.
type pullOnly struct {
	eng   engine.Engine
	mu    sync.Mutex
	calls int
}

func (p *pullOnly) VerifyAndPull(ctx context.Context, ref string) (string, error) {
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	img, err := p.eng.PullImage(ctx, ref, engine.PullOptions{Insecure: true})
	if err != nil {
		return "", err
	}
	return img.RepoDigests[0], nil
}

type rig struct {
	t         *testing.T
	collector string
	hpke      *crypto.HPKEKey
	platPub   ed25519.PublicKey
	platKey   ed25519.PrivateKey
	fake      *fakePlatform
	images    *pullOnly
	eng       engine.Engine
	wrap      func(engine.Engine) runner.Engine // what the runner gets, if set
	stateDir  string
	logs      *testutil.Buffer
	cancel    context.CancelFunc
	stopped   chan struct{}
}

func newRig(t *testing.T) *rig {
	enginetest.Need(t)
	eng, err := podman.New(context.Background(), env.podman.URI(), podman.WithSecretDir(env.stack.SecretDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	hk, _ := crypto.GenerateHPKEKey()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return &rig{t: t, collector: "col_test", hpke: hk, platPub: pub, platKey: priv, fake: newFakePlatform(),
		images: &pullOnly{eng: eng}, eng: eng, stateDir: t.TempDir(), logs: &testutil.Buffer{}}
}

func (r *rig) start() {
	cfg := runner.DefaultConfig()
	cfg.CollectorID, cfg.HPKEKey, cfg.PlatformKey, cfg.StateDir = r.collector, r.hpke, r.platPub, r.stateDir
	cfg.DefaultNetwork = "none"
	cfg.RetryBackoff = 10 * time.Millisecond
	off := false
	var eng runner.Engine = r.eng
	if r.wrap != nil {
		eng = r.wrap(r.eng)
	}
	run, err := runner.New(cfg, r.fake, eng, r.images, selinux.Labeler{Enabled: &off}, slog.New(slog.NewJSONHandler(r.logs, nil)))
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.stopped = cancel, make(chan struct{})
	go func() { run.Run(ctx); close(r.stopped) }()
	r.t.Cleanup(r.stop)
}

func (r *rig) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.stopped
		r.cancel = nil
	}
}

// lease seals a job for the rig's collector and queues it.
func (r *rig) lease(jobID string, cfg map[string]any, mutate func([]byte) []byte) {
	r.leaseMode(jobID, "", cfg, mutate)
}

// leaseMode is lease of a job in mode ("" collects, crypto.ModeValidate).
func (r *rig) leaseMode(jobID, mode string, cfg map[string]any, mutate func([]byte) []byte) {
	conf, _ := json.Marshal(cfg)
	job := &crypto.Job{JobID: jobID, IntegrationID: "int_" + jobID, Image: env.image, Config: conf,
		SecretFields: []string{"token"}, Limits: crypto.Limits{MemoryBytes: 64 << 20, TimeoutSec: 60},
		NotAfter: time.Now().Add(time.Hour), Mode: mode}
	envl, err := crypto.SealEnvelope(job, r.collector, r.hpke.PublicKey(), r.platKey)
	if err != nil {
		r.t.Fatal(err)
	}
	if mutate != nil {
		envl = mutate(envl)
	}
	r.fake.mu.Lock()
	r.fake.queue = append(r.fake.queue, &api.Lease{JobID: jobID, LeaseID: "lease-" + jobID, LeaseTTLSec: 30, Attempt: 1, Envelope: envl})
	r.fake.mu.Unlock()
}

func (r *rig) waitFinished(jobID string) api.FinishRequest {
	r.t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case id := <-r.fake.done:
			if id == jobID {
				r.fake.mu.Lock()
				defer r.fake.mu.Unlock()
				return r.fake.finished[jobID]
			}
		case <-timeout:
			r.t.Fatalf("job %s not finished after 2 min; runner log:\n%s", jobID, r.logs)
		}
	}
}

// assertClean checks that no job container or secret is left.
func (r *rig) assertClean(jobID string) {
	r.t.Helper()
	list, err := r.eng.ListContainers(context.Background(), map[string]string{runner.LabelJob: jobID})
	if err != nil || len(list) != 0 {
		r.t.Errorf("job containers left: %+v, %v", list, err)
	}
	if err := r.eng.RemoveSecret(context.Background(), "collector-job-"+jobID); err == nil {
		r.t.Errorf("job secret collector-job-%s was left behind", jobID)
	}
}

func TestJobRunsAndStreams(t *testing.T) {
	r := newRig(t)
	r.start()
	const secret = "tok-3b1f9c-very-secret"
	r.lease("job_ok", map[string]any{"token": secret, "n": 3, "bad": true}, nil)
	fin := r.waitFinished("job_ok")
	// The script's fourth line is not a record: the run exits 0 but fails,
	// so the platform does not take it for a full sync.
	if fin.ExitCode != 0 || !strings.Contains(fin.Error, "1 output line(s) refused, the first is output line 4: ") {
		t.Fatalf("finish = %+v, want exit 0 and an error naming line 4; logs:\n%s", fin, r.fake.logs["job_ok"])
	}
	if fin.Records != 3 || fin.RefusedRecords != 1 || fin.Batches != 1 {
		t.Errorf("finish counts = %+v, want 3 records, 1 refused, 1 batch", fin)
	}
	r.fake.mu.Lock()
	recs, seqs, logs := r.fake.records["job_ok"], r.fake.seqs["job_ok"], r.fake.logs["job_ok"].String()
	running := r.fake.running["job_ok"]
	r.fake.mu.Unlock()
	if len(recs) != 3 || !strings.Contains(recs[0], `"_key":"k1"`) || len(seqs) != 1 || seqs[0] != 1 {
		t.Errorf("uploaded records %q with seqs %v", recs, seqs)
	}
	if !running {
		t.Errorf("the job was never marked running")
	}
	if strings.Contains(logs, secret) || !strings.Contains(logs, "[REDACTED]") {
		t.Errorf("job logs must redact the secret:\n%s", logs)
	}
	if !strings.Contains(logs, "output line 4 refused") {
		t.Errorf("job logs must say which line was refused:\n%s", logs)
	}
	if strings.Contains(r.logs.String(), secret) {
		t.Errorf("the runner's own log holds the secret")
	}
	if fin.PeakMemoryBytes <= 0 {
		t.Logf("no stats sample for a short job (peak memory %d)", fin.PeakMemoryBytes)
	}
	r.assertClean("job_ok")
}

// TestValidationJob: a validation runs the image in validate mode (the
// mode in its environment, never the config), reports the integration's
// result with secrets redacted, and uploads no record.
func TestValidationJob(t *testing.T) {
	r := newRig(t)
	r.start()
	const secret = "tok-validate-5e2a-secret"
	r.leaseMode("job_val", crypto.ModeValidate, map[string]any{"token": secret}, nil)
	fin := r.waitFinished("job_val")
	if fin.ExitCode != 0 || fin.Error != "" || fin.Validation == nil || !fin.Validation.OK || len(fin.Validation.Checks) != 1 {
		t.Fatalf("finish = %+v (%+v), want a passed validation with one check", fin, fin.Validation)
	}
	if d := fin.Validation.Checks[0].Detail; strings.Contains(d, secret) || !strings.Contains(d, "[REDACTED]") {
		t.Errorf("the check's detail %q: want the secret redacted", d)
	}
	r.leaseMode("job_valfail", crypto.ModeValidate, map[string]any{"token": secret, "fail": true}, nil)
	fin = r.waitFinished("job_valfail")
	if fin.ExitCode != 3 || fin.Validation == nil || fin.Validation.OK || fin.Validation.Reason != "auth" {
		t.Errorf("a failed validation: %+v (%+v)", fin, fin.Validation)
	}
	r.fake.mu.Lock()
	recs := len(r.fake.records["job_val"]) + len(r.fake.records["job_valfail"])
	logs := r.fake.logs["job_valfail"].String()
	r.fake.mu.Unlock()
	if recs != 0 {
		t.Errorf("a validation uploaded %d records", recs)
	}
	if !strings.Contains(logs, "validation failed (auth)") {
		t.Errorf("the failed validation's logs do not say so:\n%s", logs)
	}
	r.assertClean("job_val")
	r.assertClean("job_valfail")
}

func TestFailingJobReportsExitAndLogs(t *testing.T) {
	r := newRig(t)
	r.start()
	r.lease("job_fail", map[string]any{"token": "x-secret-x", "fail": true}, nil)
	fin := r.waitFinished("job_fail")
	if fin.ExitCode != 3 || !strings.Contains(fin.Error, "exited with code 3") {
		t.Fatalf("finish = %+v, want exit 3", fin)
	}
	r.fake.mu.Lock()
	logs := r.fake.logs["job_fail"].String()
	r.fake.mu.Unlock()
	if !strings.Contains(logs, "failing") {
		t.Errorf("the failing job's stderr is not in its logs:\n%s", logs)
	}
	r.assertClean("job_fail")
}

func TestTamperedEnvelopeRunsNothing(t *testing.T) {
	r := newRig(t)
	r.start()
	r.lease("job_tamper", map[string]any{"token": "t"}, func(b []byte) []byte {
		var w map[string]any
		json.Unmarshal(b, &w)
		w["job_id"] = "job_tamper" // unchanged: tamper the ciphertext instead
		ct, _ := w["ct"].(string)
		w["ct"] = "A" + ct[1:]
		if ct[0] == 'A' {
			w["ct"] = "B" + ct[1:]
		}
		out, _ := json.Marshal(w)
		return out
	})
	fin := r.waitFinished("job_tamper")
	if fin.ExitCode != -1 || !strings.Contains(fin.Error, "envelope refused") {
		t.Fatalf("finish = %+v, want the envelope refused", fin)
	}
	r.images.mu.Lock()
	calls := r.images.calls
	r.images.mu.Unlock()
	if calls != 0 {
		t.Errorf("the image was pulled %d times for a refused envelope", calls)
	}
	r.assertClean("job_tamper")
}

func TestReplayedJobRefused(t *testing.T) {
	r := newRig(t)
	r.start()
	r.lease("job_once", map[string]any{"token": "t"}, nil)
	if fin := r.waitFinished("job_once"); fin.Error != "" {
		t.Fatalf("first run: %+v", fin)
	}
	r.lease("job_once", map[string]any{"token": "t"}, nil)
	fin := r.waitFinished("job_once")
	if !strings.Contains(fin.Error, "replay refused") {
		t.Fatalf("replayed job finish = %+v, want a replay refusal", fin)
	}
}

func TestLeftoversCleanedAtStart(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	// What a killed runner leaves: a secret and a container with its labels.
	const id = "job_left"
	if err := r.eng.CreateSecret(ctx, "collector-job-"+id, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.images.VerifyAndPull(ctx, env.image); err != nil {
		t.Fatal(err)
	}
	_, err := r.eng.CreateContainer(ctx, &engine.ContainerSpec{Name: "collector-job-" + id, Image: env.image, Network: "none",
		Labels:  map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelJob: id, runner.LabelCollector: r.collector},
		Ulimits: []engine.Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}, {Name: "nproc", Soft: 1024, Hard: 1024}}})
	if err != nil {
		t.Fatal(err)
	}
	r.start()
	// The runner asks for jobs once it has cleaned up.
	waitFor(t, "the runner asks for a job", func() bool {
		r.fake.mu.Lock()
		defer r.fake.mu.Unlock()
		return r.fake.nexts > 0
	})
	r.stop()
	r.assertClean(id)
}

// pingCounter is the real engine, counting the runner's engine checks and
// those that failed.
type pingCounter struct {
	engine.Engine
	mu              sync.Mutex
	calls, failures int
}

func (e *pingCounter) Ping(ctx context.Context) error {
	err := e.Engine.Ping(ctx)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if err != nil {
		e.failures++
	}
	return err
}

func (e *pingCounter) failed() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failures
}

// waitFor polls cond until it holds, failing t after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(time.Minute, cond) {
		t.Fatalf("%s: not after a minute", what)
	}
}

// poll reports whether cond came to hold within d, checking it every few
// milliseconds.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// TestNoLeaseWhileThePodmanServiceIsDown: the Podman API service stops
// (as when it restarts); the runner asks for no job while it is down,
// says so once, and asks again by itself once the service is back.
func TestNoLeaseWhileThePodmanServiceIsDown(t *testing.T) {
	r := newRig(t)
	counter := &pingCounter{}
	r.wrap = func(e engine.Engine) runner.Engine { counter.Engine = e; return counter }
	nexts := func() int {
		r.fake.mu.Lock()
		defer r.fake.mu.Unlock()
		return r.fake.nexts
	}
	r.start()
	waitFor(t, "the runner asks for jobs", func() bool { return nexts() > 0 })

	env.podman.StopService()
	up := false
	t.Cleanup(func() {
		if !up {
			env.podman.StartService()
		}
	})
	waitFor(t, "the runner sees its engine down", func() bool { return strings.Contains(r.logs.String(), "container engine unreachable") })
	before, failed := nexts(), counter.failed()
	waitFor(t, "three more failed checks", func() bool { return counter.failed() >= failed+3 })
	if n := nexts(); n != before {
		t.Fatalf("the runner asked for a job %d times while the Podman service was down", n-before)
	}

	if err := env.podman.StartService(); err != nil {
		t.Fatal(err)
	}
	up = true
	waitFor(t, "the runner asks for jobs again", func() bool { return nexts() > before })
	logs := r.logs.String()
	if strings.Count(logs, "container engine unreachable") != 1 || !strings.Contains(logs, "container engine reachable again") {
		t.Errorf("the engine going down and coming back should be logged once each:\n%s", logs)
	}
	t.Logf("%d failed engine checks while the service was down", counter.failed())
}

// TestJobFollowedAcrossAPodmanServiceRestart: the Podman API service stops
// and starts again while a job runs (its container runs on under conmon):
// the job waits for the service, follows the container on, and succeeds
// with each record sent once; nothing is left behind.
func TestJobFollowedAcrossAPodmanServiceRestart(t *testing.T) {
	r := newRig(t)
	r.start()
	r.lease("job_restart", map[string]any{"token": "tok-restart-secret", "pause": true}, nil)
	waitFor(t, "the job followed (its pause logged)", func() bool {
		r.fake.mu.Lock()
		defer r.fake.mu.Unlock()
		return r.fake.logs["job_restart"] != nil && strings.Contains(r.fake.logs["job_restart"].String(), "pausing")
	})
	stopped := time.Now()
	env.podman.StopService()
	up := false
	t.Cleanup(func() {
		if !up {
			env.podman.StartService()
		}
	})
	// Down until the job met the outage: the bindings retry a failed
	// call for 600 ms, which a quicker restart would hide.
	waitFor(t, "the job waits for its engine (or ends)", func() bool {
		r.fake.mu.Lock()
		_, ended := r.fake.finished["job_restart"]
		r.fake.mu.Unlock()
		return ended || strings.Contains(r.logs.String(), "container engine unavailable: the job waits for it")
	})
	if err := env.podman.StartService(); err != nil {
		t.Fatal(err)
	}
	up = true
	t.Logf("the Podman service was down for %v", time.Since(stopped).Round(time.Millisecond))

	fin := r.waitFinished("job_restart")
	r.fake.mu.Lock()
	recs, logs := slices.Clone(r.fake.records["job_restart"]), r.fake.logs["job_restart"].String()
	r.fake.mu.Unlock()
	if fin.ExitCode != 0 || fin.Error != "" || fin.Records != 3 || len(recs) != 3 {
		t.Errorf("finish = %+v with records %q, want exit 0 and 3 records once each; runner log:\n%s", fin, recs, r.logs)
	}
	if n := strings.Count(logs, "pausing"); n != 1 || strings.Count(logs, "10400") != 1 {
		t.Errorf("the job's stderr read before the restart went up %d times, want once", n)
	}
	r.assertClean("job_restart")
}
