package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/internal/env"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/docker"
	"github.com/collectorhq/collector/engine/podman"
)

// host is one collector host: its config and state dirs, and its engine.
type host struct {
	id    string
	etc   string
	state string
	eng   engine.Engine
	kit   *kit
	// prefix starts its containers' names (COLLECTOR_NAME_PREFIX).
	prefix string
	// mounts are host dirs the installer container gets at the same path.
	mounts []string
}

// kit is an engine as the e2e suite drives it: its CLI (as an operator
// would use it on the host), its socket and its service.
type kit struct {
	name   string // podman or docker
	socket string
	cli    func(args ...string) *exec.Cmd
	// secretDir is the tmpfs dir of job secret files, /run/collector/secrets
	// on a real host.
	secretDir string
	open      func() (engine.Engine, error)
	// stopService and startService stop the engine's API service and
	// start it again at the same socket path (a new socket inode);
	// containers keep running meanwhile.
	stopService  func()
	startService func() error
}

func (k *kit) run(args ...string) (string, error) {
	out, err := k.cli(args...).CombinedOutput()
	return string(out), err
}

// tmpfsDir is a directory on /dev/shm, a tmpfs, removed when t ends.
func tmpfsDir(t testing.TB, prefix string) string {
	d, err := os.MkdirTemp("/dev/shm", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func podmanKit(t testing.TB) *kit {
	sd := tmpfsDir(t, "collector-e2e-secrets-")
	return &kit{name: "podman", socket: world.podman.Socket, cli: world.podman.CLI, secretDir: sd,
		open: func() (engine.Engine, error) {
			return podman.New(context.Background(), world.podman.URI(), podman.WithSecretDir(sd))
		},
		stopService: world.podman.StopService, startService: world.podman.StartService}
}

func dockerKit(t testing.TB) *kit {
	sd := tmpfsDir(t, "collector-e2e-secrets-")
	return &kit{name: "docker", socket: world.dockerd.Socket, secretDir: sd,
		cli: func(args ...string) *exec.Cmd {
			return exec.Command("docker", append([]string{"-H", world.dockerd.URI()}, args...)...)
		},
		open:        func() (engine.Engine, error) { return docker.New(context.Background(), world.dockerd.URI(), sd) },
		stopService: world.dockerd.StopService, startService: world.dockerd.StartService}
}

// installArgs is the printed install command's `run` arguments, with the
// test's own config dir, state dir and engine socket in place of
// /etc/collector and the system socket (tests never touch /etc).
func (h *host) installArgs(vars map[string]string) []string {
	sock := h.kit.socket
	args := []string{"run", "--rm", "-i", "--privileged", "--network", "host"}
	if h.kit.name == "docker" {
		// This machine's sandbox withholds CAP_SYS_RESOURCE, which dockerd
		// 20.10's --privileged insists on granting ("unable to apply caps");
		// the installer needs only the socket, so label=disable stands in.
		args = []string{"run", "--rm", "-i", "--security-opt", "label=disable", "--network", "host"}
	}
	insecure := world.registry.Addr
	for k, v := range vars {
		if k == env.InsecureRegistries { // the e2e registry stays insecure too
			insecure = v + "," + insecure
			continue
		}
		args = append(args, "-e", k+"="+v)
	}
	for _, m := range h.mounts {
		args = append(args, "-v", m+":"+m)
	}
	sockDir, sd := filepath.Dir(sock), h.kit.secretDir
	args = append(args,
		"-e", "COLLECTOR_CONFIG_DIR="+h.etc, "-e", "COLLECTOR_STATE_DIR="+h.state,
		"-e", "COLLECTOR_ENGINE_HOST=unix://"+sock, "-e", "COLLECTOR_JOB_NETWORK=host",
		"-e", env.InsecureRegistries+"="+insecure, "-e", "COLLECTOR_SECRET_DIR="+sd,
		"-v", h.etc+":"+h.etc+":Z", "-v", sockDir+":"+sockDir, "-v", h.state+":"+h.state, "-v", sd+":"+sd)
	return append(args, world.collectorImage, "install")
}

var envPair = regexp.MustCompile(`-e (COLLECTOR_[A-Z_]+)=(\S+)`)

// install creates a collector on p and runs the installer as a container
// the way the printed command does, on the test's own dirs and socket.
func install(t *testing.T, p *platformProc, k *kit) *host {
	t.Helper()
	h, vars, token := newHost(t, p, k)
	out, err := h.runInstaller(vars, token)
	if err != nil {
		t.Fatalf("installer: %v\n%s", err, out)
	}
	t.Logf("installer:\n%s", out)
	if fp := worldKeyFingerprint(t); !strings.Contains(out, "TRUST ON FIRST USE") || !strings.Contains(out, fp) {
		t.Errorf("the installer did not say it pinned the platform's key %s on first use", fp)
	}
	h.open(t)
	return h
}

// newHost creates a collector on p and checks the printed install command;
// it returns the host, the command's COLLECTOR_ variables and the token.
func newHost(t *testing.T, p *platformProc, k *kit) (*host, map[string]string, string) {
	t.Helper()
	var g api.EnrollmentGrant
	p.cliJSON(&g, "collectors", "create", "e2e-"+t.Name())
	// Podman's socket directory; Docker's socket sits in /var/run with the
	// host's others, so its file.
	printed, sock := g.InstallCommands.Podman, "/run/podman"
	if k.name == "docker" {
		printed, sock = g.InstallCommands.Docker, "/var/run/docker.sock"
	}
	for _, want := range []string{k.name + " run", "--privileged", "COLLECTOR_ID=" + g.Collector.ID, "COLLECTOR_CA_PIN=sha256:",
		"/etc/collector:/etc/collector:Z", "mkdir -p -m 0700 /etc/collector /var/lib/collector /run/collector/secrets",
		"-v /run/collector/secrets:/run/collector/secrets", "-v " + sock + ":" + sock + " ", world.collectorImage, " install"} {
		if !strings.Contains(printed, want) {
			t.Fatalf("install command lacks %q:\n%s", want, printed)
		}
	}
	if strings.Contains(printed, g.EnrollmentToken) {
		t.Fatalf("the install command carries the enrollment token:\n%s", printed)
	}
	vars := map[string]string{}
	for _, m := range envPair.FindAllStringSubmatch(printed, -1) {
		vars[m[1]] = m[2]
	}
	h := &host{id: g.Collector.ID, etc: filepath.Join(t.TempDir(), "etc-collector"), state: filepath.Join(t.TempDir(), "state"), kit: k}
	os.MkdirAll(h.etc, 0o700)
	os.MkdirAll(h.state, 0o700)
	return h, vars, g.EnrollmentToken
}

// runInstaller runs the installer container with the token on stdin.
func (h *host) runInstaller(vars map[string]string, token string) (string, error) {
	cmd := h.kit.cli(h.installArgs(vars)...)
	cmd.Stdin = strings.NewReader(token + "\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// open connects h to its engine and removes the collector's containers
// when the test ends.
func (h *host) open(t *testing.T) {
	t.Helper()
	eng, err := h.kit.open()
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	t.Cleanup(func() {
		ctx := context.Background()
		for _, n := range []string{"collector-daemon", "collector-runner"} {
			eng.RemoveContainer(ctx, h.prefix+n, true)
		}
		// A job the runner was running: the engine is shared with the
		// tests that follow.
		if jobs, err := eng.ListContainers(ctx, map[string]string{runner.LabelCollector: h.id}); err == nil {
			for _, j := range jobs {
				eng.RemoveContainer(ctx, j.ID, true)
			}
		}
		eng.Close()
	})
}

func waitFor(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *platformProc) collector(t *testing.T, id string) api.Collector {
	var c api.Collector
	p.cliJSON(&c, "collectors", "show", id)
	return c
}

func (p *platformProc) job(t *testing.T, id string) api.Job {
	var j api.Job
	p.cliJSON(&j, "jobs", "show", id)
	return j
}

func (p *platformProc) runJob(t *testing.T, integrationID string) api.Job {
	var j api.Job
	p.cliJSON(&j, "jobs", "run", integrationID)
	return j
}

func (p *platformProc) waitJob(t *testing.T, id string, d time.Duration) api.Job {
	t.Helper()
	var j api.Job
	waitFor(t, "job "+id+" to finish", d, func() bool {
		j = p.job(t, id)
		return j.State == api.JobSucceeded || j.State == api.JobFailed || j.State == api.JobDead || j.State == api.JobCanceled
	})
	return j
}

func (p *platformProc) integration(t *testing.T, collectorID, image string, cfg map[string]any) string {
	b, _ := json.Marshal(cfg)
	var in api.Integration
	p.cliJSON(&in, "integrations", "create", "--name", fmt.Sprintf("ex-%d", time.Now().UnixNano()), "--image", image,
		"--config", string(b), "--secret-field", "token", "--collector", collectorID, "--network", "host", "--interval", "24h")
	return in.ID
}

func (p *platformProc) entityKeys(t *testing.T, integrationID string) map[string]bool {
	var out api.ItemList
	p.cliJSON(&out, "entities", "list", "--integration", integrationID)
	keys := map[string]bool{}
	for _, e := range out.Entities {
		keys[e.Key] = true
	}
	return keys
}

func TestEndToEndPodman(t *testing.T) {
	need(t)
	flow(t, podmanKit(t))
}

func TestEndToEndDocker(t *testing.T) {
	need(t)
	flow(t, dockerKit(t))
}

// flow is the whole life of a collector on one engine.
func flow(t *testing.T, k *kit) {
	p := startPlatform(t)
	h := install(t, p, k)
	ctx := context.Background()

	t.Run("InstallerIsIdempotent", func(t *testing.T) {
		// Run again with a burned token: it keeps the enrollment, changes nothing.
		cmd := k.cli(h.installArgs(map[string]string{env.CollectorID: h.id, env.Image: world.collectorImage})...)
		cmd.Stdin = strings.NewReader("burned-token\n")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "nothing changed") || !strings.Contains(string(out), "keeping it") {
			t.Fatalf("second install: %v\n%s", err, out)
		}
	})

	t.Run("ContainersAsDesigned", func(t *testing.T) {
		for _, name := range []string{"collector-daemon", "collector-runner"} {
			c, err := h.eng.InspectContainer(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			// Podman starts only restart policy always at boot (podman-restart.service).
			want := map[string]engine.RestartPolicy{"podman": engine.RestartAlways, "docker": engine.RestartUnlessStopped}[k.name]
			if c.Restart != want || !strings.Contains(c.Image, "@sha256:") || c.Labels["io.collector.role"] == "" {
				t.Errorf("%s: restart %q, image %q, labels %v", name, c.Restart, c.Image, c.Labels)
			}
		}
	})

	t.Run("Active", func(t *testing.T) {
		waitFor(t, "collector active", 60*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	})

	const secret = "e2e-secret-token-7f3a9c"
	var integ string
	t.Run("RunNowCollectsAndSecondRunDeletes", func(t *testing.T) {
		integ = p.integration(t, h.id, world.exampleImage, map[string]any{"count": 30, "relationships": true, "token": secret})
		j := p.waitJob(t, p.runJob(t, integ).ID, 3*time.Minute)
		if j.State != api.JobSucceeded {
			logs, _ := p.cli("jobs", "logs", j.ID)
			t.Fatalf("job %+v\nlogs:\n%s", j, logs)
		}
		keys := p.entityKeys(t, integ)
		if len(keys) < 30 {
			t.Fatalf("%d entities after the first run, want 30 (+ the secret proof)", len(keys))
		}
		if _, err := p.cli("integrations", "update", integ, "--config", `{"count": 20, "relationships": true, "token": "`+secret+`"}`); err != nil {
			t.Fatal(err)
		}
		j = p.waitJob(t, p.runJob(t, integ).ID, 3*time.Minute)
		if j.State != api.JobSucceeded {
			t.Fatalf("second job %+v", j)
		}
		after := p.entityKeys(t, integ)
		if len(after) != len(keys)-10 {
			t.Errorf("%d live entities after the second run, want %d", len(after), len(keys)-10)
		}
		// The SDK wrote them to the records channel, past the engine's
		// log path: the runner read none from stdout.
		out, _ := k.run("logs", "collector-runner")
		if !strings.Contains(out, `"records_channel":40,"records_stdout":0`) {
			t.Errorf("the runner's log does not say the second run's 40 records (20 entities, 19 relationships, the proof) came through the records channel:\n%s", out)
		}
	})

	t.Run("LargeJobLosesNoRecord", func(t *testing.T) {
		// Podman 4.3 ends a followed log stream early and short: every
		// record must still arrive (the runner re-reads the stored log).
		const n = 200_000
		id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": n, "token": secret})
		j := p.waitJob(t, p.runJob(t, id).ID, 5*time.Minute)
		if j.State != api.JobSucceeded || j.Records != n+1 || j.RefusedRecords != 0 {
			t.Fatalf("large job %+v: want succeeded with %d records", j, n+1)
		}
	})

	t.Run("FailingIntegrationFailsWithLogs", func(t *testing.T) {
		id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 3, "fail": true, "token": secret})
		j := p.waitJob(t, p.runJob(t, id).ID, 3*time.Minute)
		logs, _ := p.cli("jobs", "logs", j.ID)
		if j.State != api.JobFailed || !strings.Contains(logs, "fail") {
			t.Fatalf("failing job %+v\nlogs:\n%s", j, logs)
		}
		if strings.Contains(logs, secret) {
			t.Errorf("job logs hold the secret")
		}
	})

	t.Run("UnsignedImageRefusedAtSave", func(t *testing.T) {
		// The platform checks an image against the policy and its
		// registry when the integration is saved, as the runner will.
		out, err := p.cli("integrations", "create", "--name", "unsigned", "--image", world.unsignedImage, "--config", `{"count": 1}`,
			"--collector", h.id, "--network", "host", "--interval", "24h")
		if err == nil || !strings.Contains(out, "image_refused") && !strings.Contains(out, "not signed") {
			t.Fatalf("creating an integration with an unsigned image: %v\n%s", err, out)
		}
		if !strings.Contains(out, "not signed") {
			t.Errorf("the refusal does not say why: %s", out)
		}
	})

	t.Run("ConfigCheckedAgainstTheImageSchema", func(t *testing.T) {
		// The example image declares its config's schema in a label: a
		// config that breaks it is refused at save, naming the field, and
		// a field the schema marks writeOnly is a secret even when the
		// request did not say so.
		out, err := p.cli("integrations", "create", "--name", "bad-config", "--image", world.exampleImage, "--config", `{"count": "many"}`,
			"--collector", h.id, "--network", "host", "--interval", "24h")
		if err == nil || !strings.Contains(out, "count") {
			t.Fatalf("a config against the schema: %v\n%s", err, out)
		}
		var in api.Integration
		p.cliJSON(&in, "integrations", "create", "--name", fmt.Sprintf("schema-%d", time.Now().UnixNano()), "--image", world.exampleImage,
			"--config", `{"count": 1, "token": "`+secret+`"}`, "--collector", h.id, "--network", "host", "--interval", "24h")
		if !slices.Contains(in.SecretFields, "token") || strings.Contains(string(in.Config), secret) || len(in.ConfigSchema) == 0 {
			t.Errorf("an integration of an image with a schema: secret fields %v, config %s, schema %d bytes", in.SecretFields, in.Config, len(in.ConfigSchema))
		}
		// Moved to an image that cannot be read now (nothing listens on
		// the discard port): saved with a warning, and without the old
		// image's schema; back to the example image, its schema is read
		// again.
		var moved api.Integration
		p.cliJSON(&moved, "integrations", "update", in.ID, "--image", "127.0.0.1:9/nowhere/integration:1")
		if len(moved.ConfigSchema) != 0 || len(moved.Warnings) != 1 {
			t.Errorf("moved to an unreadable image: schema %d bytes, warnings %q; want no schema and a warning", len(moved.ConfigSchema), moved.Warnings)
		}
		var back api.Integration
		p.cliJSON(&back, "integrations", "update", in.ID, "--image", world.exampleImage)
		if len(back.ConfigSchema) == 0 {
			t.Error("back on the example image: its schema was not read again")
		}
	})

	t.Run("MovedTagRefusedAtRunNothingPulled", func(t *testing.T) {
		// Accepted when saved (signed then), the tag is moved to an
		// image nobody signed: the runner verifies again and refuses it.
		// (The tag first goes back to the signed image: each engine's
		// flow moves it.)
		if _, err := world.podman.Run("push", "--tls-verify=false", world.exampleImage, "docker://"+world.movableImage); err != nil {
			t.Fatal(err)
		}
		id := p.integration(t, h.id, world.movableImage, map[string]any{"count": 1, "token": secret})
		if _, err := world.podman.Run("push", "--tls-verify=false", world.collectorImage, "docker://"+world.movableImage); err != nil {
			t.Fatal(err)
		}
		j := p.waitJob(t, p.runJob(t, id).ID, 3*time.Minute)
		if j.State != api.JobFailed || !strings.Contains(j.Error, "refused") {
			t.Fatalf("moved-tag job %+v", j)
		}
		if ok, _ := h.eng.ImageExists(ctx, world.movableImage); ok {
			t.Errorf("the moved tag's image was pulled")
		}
	})

	t.Run("SecretNeverLeaks", func(t *testing.T) {
		for _, name := range []string{"collector-daemon", "collector-runner"} {
			out, _ := k.run("logs", name)
			if strings.Contains(out, secret) {
				t.Errorf("%s's logs hold the secret", name)
			}
			insp, _ := k.run("inspect", name)
			if strings.Contains(insp, secret) {
				t.Errorf("podman inspect %s holds the secret", name)
			}
		}
		if strings.Contains(p.log.String(), secret) {
			t.Errorf("the platform's log holds the secret")
		}
		db, _ := os.ReadFile(filepath.Join(p.dataDir, "platform.db"))
		if strings.Contains(string(db), secret) {
			t.Errorf("the platform database holds the secret in clear")
		}
	})

	t.Run("RunnerKilledMidJobRerunsWithoutDuplicates", func(t *testing.T) {
		id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 10, "sleep_seconds": 6, "token": secret})
		j := p.runJob(t, id)
		waitFor(t, "job running", time.Minute, func() bool { return p.job(t, j.ID).State == api.JobRunning })
		if out, err := k.run("kill", "--signal", "KILL", "collector-runner"); err != nil {
			t.Fatalf("kill the runner: %v\n%s", err, out)
		}
		done := p.waitJob(t, j.ID, 3*time.Minute)
		if done.State != api.JobSucceeded || done.Attempt < 2 {
			t.Fatalf("job after the runner's kill: %+v (want succeeded on attempt 2+)", done)
		}
		if keys := p.entityKeys(t, id); len(keys) != 11 {
			t.Errorf("%d entities, want 11 (10 + proof), no duplicates", len(keys))
		}
	})

	t.Run("PlatformStoppedMidJobStillCompletes", func(t *testing.T) {
		id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 5, "sleep_seconds": 4, "token": secret})
		j := p.runJob(t, id)
		waitFor(t, "job running", time.Minute, func() bool { return p.job(t, j.ID).State == api.JobRunning })
		p.stop()
		time.Sleep(2 * time.Second)
		p.start()
		done := p.waitJob(t, j.ID, 3*time.Minute)
		if done.State != api.JobSucceeded {
			t.Fatalf("job across a platform restart: %+v", done)
		}
	})

	t.Run("JobContainersCleanedUp", func(t *testing.T) {
		waitFor(t, "job containers removed", 30*time.Second, func() bool {
			list, err := h.eng.ListContainers(ctx, map[string]string{"io.collector.role": "job"})
			return err == nil && len(list) == 0
		})
		if left, _ := os.ReadDir(k.secretDir); len(left) > 0 {
			t.Errorf("job secret files left in %s: %v", k.secretDir, left)
		}
		if k.name == "podman" {
			if out, _ := k.run("secret", "ls", "--format", "{{.Name}}"); strings.Contains(out, "collector-job-") {
				t.Errorf("Podman secrets left (job secrets are files on a tmpfs now):\n%s", out)
			}
		}
	})

	// Last: the job it interrupts may leave objects the checks above would
	// count.
	t.Run("EngineRestartDoesNotBlindTheCollector", func(t *testing.T) {
		engineRestart(t, p, h, secret)
	})
}

// engineRestart stops the engine's API service and starts it again at the
// same socket path (a new socket inode), once while the collector idles
// and once while a job runs. The job running then may fail or complete;
// the next job must succeed, and the collector's own containers must not
// have been restarted or recreated: they see the new socket through their
// mount of its directory.
func engineRestart(t *testing.T, p *platformProc, h *host, secret string) {
	ctx := context.Background()
	before := roleContainers(t, h)
	restart := func() {
		t.Helper()
		h.kit.stopService()
		// Down long enough for the daemon's heartbeat and the runner's
		// calls to meet the closed socket.
		time.Sleep(3 * time.Second)
		if err := h.kit.startService(); err != nil {
			t.Fatalf("start the engine again: %v", err)
		}
	}
	quick := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 5, "token": secret})
	mustSucceed := func(what string) {
		t.Helper()
		j := p.waitJob(t, p.runJob(t, quick).ID, 3*time.Minute)
		if j.State != api.JobSucceeded {
			logs, _ := p.cli("jobs", "logs", j.ID)
			runner, _ := h.kit.run("logs", "--tail", "30", "collector-runner")
			t.Fatalf("the job %s: %+v\njob logs:\n%s\nrunner:\n%s", what, j, logs, runner)
		}
	}

	restart()
	mustSucceed("after an engine restart while the collector idled")

	slow := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 5, "sleep_seconds": 6, "token": secret})
	j := p.runJob(t, slow)
	waitFor(t, "job running", time.Minute, func() bool { return p.job(t, j.ID).State == api.JobRunning })
	restart()
	during := p.waitJob(t, j.ID, 3*time.Minute)
	t.Logf("the job running across the restart ended %s (attempt %d): %s", during.State, during.Attempt, during.Error)
	mustSucceed("after an engine restart during a job")

	rolesUntouched(t, h, before, "the restarts")
	// Not asserted: the runner removes a job's objects once, and during
	// the restart that fails (reported to the runner's owner).
	if list, err := h.eng.ListContainers(ctx, map[string]string{"io.collector.role": "job"}); err == nil && len(list) > 0 {
		left, _ := os.ReadDir(h.kit.secretDir)
		t.Logf("left by the job the restart interrupted: %d job container(s), %d secret file(s)", len(list), len(left))
	}
}

// rolesStarted waits until collector-daemon and collector-runner run,
// both started after start.
func rolesStarted(t *testing.T, h *host, what string, start time.Time) {
	t.Helper()
	waitFor(t, what, 30*time.Second, func() bool {
		for _, n := range []string{"collector-daemon", "collector-runner"} {
			c, err := h.eng.InspectContainer(context.Background(), n)
			if err != nil || !c.Running || c.StartedAt.Before(start) {
				return false
			}
		}
		return true
	})
}

// rolesUntouched checks that the collector's containers are those of
// before: neither recreated nor restarted.
func rolesUntouched(t *testing.T, h *host, before map[string]*engine.Container, across string) {
	t.Helper()
	for name, b := range before {
		c, err := h.eng.InspectContainer(context.Background(), name)
		if err != nil {
			t.Fatalf("%s after %s: %v", name, across, err)
		}
		if c.ID != b.ID || !c.StartedAt.Equal(b.StartedAt) {
			t.Errorf("%s was recreated or restarted across %s: %s started %v, was %s started %v", name, across, c.ID, c.StartedAt, b.ID, b.StartedAt)
		}
	}
}

// roleContainers inspects collector-daemon and collector-runner.
func roleContainers(t *testing.T, h *host) map[string]*engine.Container {
	out := map[string]*engine.Container{}
	for _, name := range []string{"collector-daemon", "collector-runner"} {
		c, err := h.eng.InspectContainer(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = c
	}
	return out
}
