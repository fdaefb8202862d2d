package enginetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine"
)

// Options tell the suite what its engine can reach.
type Options struct {
	// Image is a reference to the harness's test image in a registry.
	Image string
	// ImageDigest is the same image by the registry's digest.
	ImageDigest string
	// Registry is the registry's host:port, for a pull of a missing image.
	Registry string
	// Insecure pulls from the registry over plain HTTP.
	Insecure bool
	// Kind is the backend kind the engine must report.
	Kind engine.Kind
	// StorageDirs are the directories where the engine keeps its state on
	// a disk (storage and run roots, data and exec roots, its log): no
	// secret value may ever be written below them.
	StorageDirs []string
	// WithSecretDir opens the same engine keeping secrets in dir.
	WithSecretDir func(dir string) (engine.Engine, error)
	// NoOOMReport, when set, says why the engine does not report a
	// container the kernel killed at its memory limit (Podman 4.3 with
	// runc on this host leaves OOMKilled false): the suite then checks the
	// exit code only, and the runner falls back on its memory samples.
	NoOOMReport string
}

// Run checks eng against the behaviour every backend must share.
func Run(t *testing.T, eng engine.Engine, o Options) {
	s := &suite{eng: eng, o: o}
	t.Run("Info", s.testInfo)
	t.Run("Pull", s.testPull)
	if t.Failed() {
		return // the rest needs the image
	}
	t.Run("PullMissing", s.testPullMissing)
	t.Run("Load", s.testLoad)
	t.Run("ExitCode", s.testExitCode)
	t.Run("StdoutStderrApart", s.testStreams)
	t.Run("FollowDeliversEverything", s.testFollow)
	t.Run("StopHonoursTimeout", s.testStop)
	t.Run("Secret", s.testSecret)
	t.Run("SecretNeverOnDisk", s.testSecretNeverOnDisk)
	t.Run("SecretDirNotTmpfsRefused", s.testSecretDirNotTmpfs)
	t.Run("ListByLabel", s.testList)
	t.Run("InspectReadsBack", s.testInspect)
	t.Run("ReadOnlyRootfs", s.testReadOnly)
	t.Run("CapDropAll", s.testCapDrop)
	t.Run("UserEnvMount", s.testUserEnvMount)
	t.Run("Stats", s.testStats)
	t.Run("WaitHonoursContext", s.testWaitContext)
	t.Run("Errors", s.testErrors)
	t.Run("HealthCheck", s.testHealthCheck)
	t.Run("Tmpfs", s.testTmpfs)
	t.Run("LogLimit", s.testLogLimit)
	t.Run("ReadLogs", s.testReadLogs)
	t.Run("ListImages", s.testListImages)
	t.Run("Storage", s.testStorage)
	t.Run("SecurityOptionsReadBack", s.testSecurityOptionsReadBack)
	t.Run("OOMKilled", s.testOOMKilled)
	t.Run("Signal", s.testSignal)
	t.Run("Rename", s.testRename)
}

type suite struct {
	eng engine.Engine
	o   Options
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// uniq returns a name unique to this run.
func uniq(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// spec returns a spec for the test image with the explicit ulimits every
// container here needs.
func (s *suite) spec(name string, cmd ...string) *engine.ContainerSpec {
	return &engine.ContainerSpec{
		Name:    name,
		Image:   s.o.Image,
		Command: cmd,
		Network: "none",
		Ulimits: []engine.Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}, {Name: "nproc", Soft: 1024, Hard: 1024}},
		Labels:  map[string]string{"io.collector.test": "enginetest"},
	}
}

// create creates a container and removes it when the test ends.
func (s *suite) create(t *testing.T, sp *engine.ContainerSpec) string {
	t.Helper()
	id, err := s.eng.CreateContainer(ctxT(t), sp)
	if err != nil {
		t.Fatalf("CreateContainer(%s): %v", sp.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.eng.RemoveContainer(ctx, id, true); err != nil && !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("RemoveContainer(%s): %v", sp.Name, err)
		}
	})
	return id
}

// run creates, starts and waits for a container; it returns the exit code
// and the two streams.
func (s *suite) run(t *testing.T, sp *engine.ContainerSpec) (int, string, string) {
	t.Helper()
	ctx := ctxT(t)
	id := s.create(t, sp)
	if err := s.eng.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	code, err := s.eng.WaitContainer(ctx, id)
	if err != nil {
		t.Fatalf("WaitContainer: %v", err)
	}
	var out, errb bytes.Buffer
	if err := s.eng.ContainerLogs(ctx, id, false, &out, &errb); err != nil {
		t.Fatalf("ContainerLogs: %v", err)
	}
	return code, out.String(), errb.String()
}

func (s *suite) testInfo(t *testing.T) {
	if err := s.eng.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	info, err := s.eng.Info(ctxT(t))
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Kind != s.o.Kind || s.eng.Kind() != s.o.Kind {
		t.Errorf("kind = %q / %q, want %q", info.Kind, s.eng.Kind(), s.o.Kind)
	}
	if info.Version == "" || info.APIVersion == "" {
		t.Errorf("version %q, API version %q: want both", info.Version, info.APIVersion)
	}
	if info.CgroupVersion != "1" && info.CgroupVersion != "2" {
		t.Errorf("cgroup version %q, want 1 or 2", info.CgroupVersion)
	}
	if info.CPUs < 1 || info.MemoryBytes <= 0 {
		t.Errorf("CPUs %d, memory %d: want positive", info.CPUs, info.MemoryBytes)
	}
	t.Logf("engine %s %s (API %s), cgroup v%s, rootless %v, SELinux %v", info.Kind, info.Version, info.APIVersion, info.CgroupVersion, info.Rootless, info.SELinuxEnabled)
}

func (s *suite) testPull(t *testing.T) {
	ctx := ctxT(t)
	img, err := s.eng.PullImage(ctx, s.o.Image, engine.PullOptions{Insecure: s.o.Insecure})
	if err != nil {
		t.Fatalf("PullImage(%s): %v", s.o.Image, err)
	}
	if img.ID == "" || len(img.RepoDigests) == 0 {
		t.Fatalf("pulled image %+v: want an ID and a repo digest", img)
	}
	ok, err := s.eng.ImageExists(ctx, s.o.Image)
	if err != nil || !ok {
		t.Fatalf("ImageExists after pull = %v, %v", ok, err)
	}
	// By digest, as the collector always pulls.
	byDigest := s.o.ImageDigest
	if _, err := s.eng.PullImage(ctx, byDigest, engine.PullOptions{Insecure: s.o.Insecure}); err != nil {
		t.Fatalf("PullImage(%s): %v", byDigest, err)
	}
	if got, err := s.eng.InspectImage(ctx, byDigest); err != nil || got.ID != img.ID {
		t.Fatalf("InspectImage(%s) = %+v, %v; want ID %s", byDigest, got, err, img.ID)
	}
}

func (s *suite) testPullMissing(t *testing.T) {
	ref := s.o.Registry + "/collector-test/missing:1"
	_, err := s.eng.PullImage(ctxT(t), ref, engine.PullOptions{Insecure: s.o.Insecure})
	if !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("PullImage(%s) = %v, want ErrNotFound", ref, err)
	}
	if ok, err := s.eng.ImageExists(ctxT(t), ref); ok || err != nil {
		t.Fatalf("ImageExists(%s) = %v, %v; want false, nil", ref, ok, err)
	}
}

func (s *suite) testExitCode(t *testing.T) {
	for _, want := range []int{0, 7} {
		code, _, _ := s.run(t, s.spec(uniq("exit"), "sh", "-c", "exit "+itoa(want)))
		if code != want {
			t.Errorf("exit code = %d, want %d", code, want)
		}
	}
}

func (s *suite) testStreams(t *testing.T) {
	code, out, errs := s.run(t, s.spec(uniq("streams"), "sh", "-c", "echo to-out; echo to-err >&2; echo more-out"))
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if out != "to-out\nmore-out\n" {
		t.Errorf("stdout = %q, want %q", out, "to-out\nmore-out\n")
	}
	if errs != "to-err\n" {
		t.Errorf("stderr = %q, want %q", errs, "to-err\n")
	}
}

// testFollow: a followed log returns when the container exits, with every
// line it wrote exactly once and in order, however fast it wrote them; or
// with engine.ErrLogIncomplete, never with a silent loss. The engines here
// must not need the error.
func (s *suite) testFollow(t *testing.T) {
	ctx := ctxT(t)
	const n = 200000
	id := s.create(t, s.spec(uniq("follow"), "sh", "-c", "seq 1 "+itoa(n)+"; echo done >&2"))
	if err := s.eng.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := s.eng.ContainerLogs(ctx, id, true, &out, &errb); err != nil {
		t.Fatalf("ContainerLogs(follow): %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for i, l := range lines {
		if l != itoa(i+1) {
			t.Fatalf("followed stdout line %d is %q, want %d (%d lines in all)", i+1, l, i+1, len(lines))
		}
	}
	if len(lines) != n || errb.String() != "done\n" {
		t.Fatalf("followed %d stdout lines and stderr %q; want %d lines, stderr done", len(lines), errb.String(), n)
	}
}

func (s *suite) testStop(t *testing.T) {
	ctx := ctxT(t)
	// PID 1 ignores SIGTERM, so only the kill after the timeout stops it.
	id := s.create(t, s.spec(uniq("stop"), "sh", "-c", "trap '' TERM; while :; do sleep 1; done"))
	if err := s.eng.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.eng.StopContainer(ctx, id, 2*time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	took := time.Since(start)
	if took < 1500*time.Millisecond || took > 12*time.Second {
		t.Errorf("stop with a 2 s timeout took %v", took)
	}
	c, err := s.eng.InspectContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Running {
		t.Errorf("container still running after stop: %+v", c)
	}
}

func (s *suite) testSecret(t *testing.T) {
	ctx := ctxT(t)
	name := uniq("secret")
	value := "s3cret-" + uniq("v")
	if err := s.eng.CreateSecret(ctx, name, []byte(value)); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if err := s.eng.CreateSecret(ctx, name, []byte("other")); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("CreateSecret on a taken name = %v, want ErrConflict", err)
	}
	sp := s.spec(uniq("secret"), "sh", "-c", "cat /run/collector/config.json; ls -ln /run/collector/config.json >&2")
	sp.Secrets = []engine.SecretMount{{Name: name, Target: "/run/collector/config.json", Mode: 0o400}}
	sp.ReadOnlyRootfs = true
	sp.CapDrop = []string{"ALL"}
	code, out, errs := s.run(t, sp)
	if code != 0 || out != value {
		t.Fatalf("reading the secret: exit %d, stdout %q (stderr %q), want %q", code, out, errs, value)
	}
	if !strings.HasPrefix(errs, "-r--------") {
		t.Errorf("secret file mode: %q, want -r--------", errs)
	}
	if err := s.eng.RemoveSecret(ctx, name); err != nil {
		t.Fatalf("RemoveSecret: %v", err)
	}
	if err := s.eng.RemoveSecret(ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("second RemoveSecret = %v, want ErrNotFound", err)
	}
	sp2 := s.spec(uniq("nosecret"), "true")
	sp2.Secrets = sp.Secrets
	if id, err := s.eng.CreateContainer(ctx, sp2); err == nil {
		s.eng.RemoveContainer(ctx, id, true)
		t.Errorf("a container created with a removed secret: want an error")
	}
}

func (s *suite) testList(t *testing.T) {
	ctx := ctxT(t)
	run := uniq("run")
	for i := 0; i < 2; i++ {
		sp := s.spec(uniq("list"), "true")
		sp.Labels["io.collector.run"] = run
		s.create(t, sp)
	}
	s.create(t, s.spec(uniq("other"), "true"))
	got, err := s.eng.ListContainers(ctx, map[string]string{"io.collector.run": run})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("ListContainers by label: %d containers, want 2: %+v", len(got), got)
	}
	for _, c := range got {
		if c.Labels["io.collector.run"] != run || c.Name == "" || c.State == "" {
			t.Errorf("listed %+v: want the label, a name and a state", c)
		}
	}
}

func (s *suite) testInspect(t *testing.T) {
	sp := s.spec(uniq("inspect"), "true")
	sp.Restart = engine.RestartUnlessStopped
	sp.Resources = engine.Resources{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: 64}
	sp.Ulimits = []engine.Ulimit{{Name: "nofile", Soft: 512, Hard: 1024}, {Name: "nproc", Soft: 256, Hard: 512}}
	sp.ReadOnlyRootfs = true
	id := s.create(t, sp)
	c, err := s.eng.InspectContainer(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != sp.Name || c.ID != id {
		t.Errorf("name/ID = %q/%q, want %q/%q", c.Name, c.ID, sp.Name, id)
	}
	if c.Restart != engine.RestartUnlessStopped {
		t.Errorf("restart policy = %q, want unless-stopped", c.Restart)
	}
	if c.MemoryLimit != 64<<20 {
		t.Errorf("memory limit = %d, want %d", c.MemoryLimit, 64<<20)
	}
	if !c.ReadOnlyRootfs {
		t.Errorf("read-only rootfs not set")
	}
	want := map[string]engine.Ulimit{"nofile": {Name: "nofile", Soft: 512, Hard: 1024}, "nproc": {Name: "nproc", Soft: 256, Hard: 512}}
	for _, u := range c.Ulimits {
		if w, ok := want[u.Name]; ok && u == w {
			delete(want, u.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("ulimits = %+v, missing %+v", c.Ulimits, want)
	}
	if c.Labels["io.collector.test"] != "enginetest" {
		t.Errorf("labels = %v", c.Labels)
	}
}

func (s *suite) testReadOnly(t *testing.T) {
	sp := s.spec(uniq("ro"), "sh", "-c", "touch /written")
	sp.ReadOnlyRootfs = true
	code, _, errs := s.run(t, sp)
	if code == 0 || !strings.Contains(errs, "Read-only file system") {
		t.Errorf("write to a read-only rootfs: exit %d, stderr %q; want a failure", code, errs)
	}
	sp = s.spec(uniq("rw"), "sh", "-c", "touch /written")
	if code, _, errs := s.run(t, sp); code != 0 {
		t.Errorf("write to a writable rootfs: exit %d, stderr %q", code, errs)
	}
}

func (s *suite) testCapDrop(t *testing.T) {
	sp := s.spec(uniq("caps"), "grep", "-E", "^(CapPrm|CapEff|CapBnd|NoNewPrivs)", "/proc/self/status")
	sp.CapDrop = []string{"ALL"}
	sp.NoNewPrivileges = true
	code, out, errs := s.run(t, sp)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, f := range []string{"CapPrm", "CapEff", "CapBnd"} {
		if !strings.Contains(out, f+":\t0000000000000000") {
			t.Errorf("%s not zero with all capabilities dropped:\n%s", f, out)
		}
	}
	if !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Errorf("no_new_privs not set:\n%s", out)
	}
	// The control: without the drop the bounding set is not empty.
	code, out, _ = s.run(t, s.spec(uniq("caps"), "grep", "^CapBnd", "/proc/self/status"))
	if code != 0 || strings.Contains(out, "0000000000000000") {
		t.Errorf("default bounding set is empty (%q): the drop test proves nothing", out)
	}
}

func (s *suite) testUserEnvMount(t *testing.T) {
	dir, err := os.MkdirTemp("", "enginetest-mount-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	sp := s.spec(uniq("user"), "sh", "-c", `id -u; echo "$GREETING"; cat /data/in.txt; echo; touch /data/new 2>&1 || echo refused`)
	sp.User = "1000:1000"
	sp.Env = map[string]string{"GREETING": "hello"}
	sp.Mounts = []engine.Mount{{Source: dir, Target: "/data", ReadOnly: true}}
	code, out, errs := s.run(t, sp)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || lines[0] != "1000" || lines[1] != "hello" || lines[2] != "from-host" || !strings.Contains(out, "refused") {
		t.Errorf("user/env/mount output:\n%s\nwant uid 1000, GREETING, the host file, and a refused write", out)
	}
}

func (s *suite) testStats(t *testing.T) {
	ctx := ctxT(t)
	id := s.create(t, s.spec(uniq("stats"), "sh", "-c", "dd if=/dev/zero of=/dev/null bs=1M count=64 2>/dev/null; sleep 60"))
	if err := s.eng.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	st, err := s.eng.ContainerStats(ctx, id)
	if err != nil {
		t.Fatalf("ContainerStats: %v", err)
	}
	if st.MemoryBytes == 0 {
		t.Errorf("stats memory = 0, want the container's usage: %+v", st)
	}
	if st.CPUNanos == 0 {
		t.Errorf("stats CPU time = 0: %+v", st)
	}
	t.Logf("stats: %+v", st)
}

func (s *suite) testWaitContext(t *testing.T) {
	id := s.create(t, s.spec(uniq("wait"), "sleep", "60"))
	if err := s.eng.StartContainer(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.eng.WaitContainer(ctx, id)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("WaitContainer with a 500 ms context = %v after %v; want a context error promptly", err, time.Since(start))
	}
	s.eng.StopContainer(ctxT(t), id, 0)
}

func (s *suite) testErrors(t *testing.T) {
	ctx := ctxT(t)
	missing := uniq("missing")
	if _, err := s.eng.InspectContainer(ctx, missing); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("InspectContainer(missing) = %v, want ErrNotFound", err)
	}
	if err := s.eng.RemoveContainer(ctx, missing, true); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("RemoveContainer(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.eng.InspectImage(ctx, "localhost/collector-test/"+missing+":1"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("InspectImage(missing) = %v, want ErrNotFound", err)
	}
	sp := s.spec(uniq("taken"), "true")
	s.create(t, sp)
	if id, err := s.eng.CreateContainer(ctx, sp); !errors.Is(err, engine.ErrConflict) {
		if err == nil {
			s.eng.RemoveContainer(ctx, id, true)
		}
		t.Errorf("CreateContainer with a taken name = %v, want ErrConflict", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
