package enginetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine"
)

// The cases of what the collector's own containers and its operator
// commands ask of an engine: health checks, private tmpfs mounts, bounded
// logs, logs by time, the image list, container storage figures.

func (s *suite) testHealthCheck(t *testing.T) {
	ctx := ctxT(t)
	for _, c := range []struct {
		name, want string
		cmd        []string
	}{
		// No argument holds a space: Podman 4.3's Docker API splits the
		// check's arguments at spaces (["sh","-c","echo a; exit 1"]
		// becomes sh -c echo a; exit 1, which passes). The collector's own
		// check, ["/usr/bin/collector","health"], has none.
		{"healthy", engine.HealthHealthy, []string{"echo", "all-well"}},
		{"unhealthy", engine.HealthUnhealthy, []string{"cat", "/not-well"}},
	} {
		sp := s.spec(uniq("health-"+c.name), "sleep", "120")
		sp.HealthCheck = &engine.HealthCheck{Command: c.cmd, Interval: time.Second, Timeout: 5 * time.Second, Retries: 1}
		id := s.create(t, sp)
		if err := s.eng.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		var got string
		deadline := time.Now().Add(45 * time.Second)
		for got != c.want && time.Now().Before(deadline) {
			h, err := s.eng.RunHealthCheck(ctx, id)
			if err != nil {
				t.Fatalf("RunHealthCheck(%s): %v", c.name, err)
			}
			got = h.Status
			time.Sleep(500 * time.Millisecond)
		}
		if got != c.want {
			t.Errorf("health of a container checked with %v = %q, want %q", c.cmd, got, c.want)
		}
		// Inspect gives the engine's own record, which follows its schedule
		// (every second here).
		var ci *engine.Container
		for {
			var err error
			if ci, err = s.eng.InspectContainer(ctx, id); err != nil {
				t.Fatal(err)
			}
			if ci.Health == c.want || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !ci.HasHealthCheck || ci.Health != c.want {
			t.Errorf("inspect: health check %v, health %q; want true, %q", ci.HasHealthCheck, ci.Health, c.want)
		}
		h, err := s.eng.RunHealthCheck(ctx, id)
		if wantOut := map[string]string{"healthy": "all-well", "unhealthy": "not-well"}[c.name]; err != nil || !strings.Contains(h.Output, wantOut) {
			t.Errorf("the last check's output = %+v, %v; want what the command printed", h, err)
		}
		s.eng.StopContainer(ctx, id, 0)
	}
	// Run now, whatever the engine's schedule: a check due every 10
	// minutes answers healthy at once (an upgrade waits on it).
	sp := s.spec(uniq("health-now"), "sleep", "120")
	sp.HealthCheck = &engine.HealthCheck{Command: []string{"echo", "now-well"}, Interval: 10 * time.Minute, Timeout: 5 * time.Second, StartPeriod: 10 * time.Minute, Retries: 3}
	now := s.create(t, sp)
	if err := s.eng.StartContainer(ctx, now); err != nil {
		t.Fatal(err)
	}
	if h, err := s.eng.RunHealthCheck(ctx, now); err != nil || h.Status != engine.HealthHealthy || !strings.Contains(h.Output, "now-well") {
		t.Errorf("a check run now on a container checked every 10 min = %+v, %v; want healthy with its output", h, err)
	}
	s.eng.StopContainer(ctx, now, 0)
	plain := s.create(t, s.spec(uniq("nohealth"), "sleep", "120"))
	if err := s.eng.StartContainer(ctx, plain); err != nil {
		t.Fatal(err)
	}
	defer s.eng.StopContainer(ctx, plain, 0)
	if ci, err := s.eng.InspectContainer(ctx, plain); err != nil || ci.HasHealthCheck {
		t.Errorf("a container without a health check: inspect says it has one (%v)", err)
	}
	if _, err := s.eng.RunHealthCheck(ctx, plain); err == nil {
		t.Errorf("RunHealthCheck on a container without one succeeded")
	}
}

func (s *suite) testTmpfs(t *testing.T) {
	sp := s.spec(uniq("tmpfs"), "sh", "-c", "echo ok > /run/private/f && cat /run/private/f && stat -c %a /run/private && ! touch /elsewhere 2>/dev/null")
	sp.ReadOnlyRootfs = true
	sp.Tmpfs = []engine.Tmpfs{{Target: "/run/private", SizeBytes: 1 << 20}}
	code, out, errs := s.run(t, sp)
	if code != 0 || !strings.Contains(out, "ok") || !strings.Contains(out, "700") {
		t.Errorf("tmpfs on a read-only rootfs: exit %d, out %q, err %q; want a writable 0700 dir", code, out, errs)
	}
}

func (s *suite) testLogLimit(t *testing.T) {
	sp := s.spec(uniq("loglimit"), "true")
	sp.Log = engine.LogLimit{MaxBytes: 10 << 20, MaxFiles: 3}
	id := s.create(t, sp)
	c, err := s.eng.InspectContainer(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	// Podman reports the bound rounded ("10.49MB").
	if c.LogMaxBytes < 10<<20*99/100 || c.LogMaxBytes > 10<<20*101/100 {
		t.Errorf("log bound read back = %d bytes (driver %q), want about %d", c.LogMaxBytes, c.LogDriver, 10<<20)
	}
}

func (s *suite) testReadLogs(t *testing.T) {
	ctx := ctxT(t)
	sp := s.spec(uniq("readlogs"), "sh", "-c", "echo first; echo err-first >&2; sleep 2; echo second; echo third")
	id := s.create(t, sp)
	if err := s.eng.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.eng.WaitContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := s.eng.ReadLogs(ctx, id, engine.LogOptions{Timestamps: true}, &out, &errb); err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	if !strings.Contains(out.String(), "first") || !strings.Contains(errb.String(), "err-first") {
		t.Fatalf("ReadLogs: stdout %q, stderr %q", out.String(), errb.String())
	}
	var stamp time.Time
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f, _, _ := strings.Cut(l, " ")
		ts, err := time.Parse(time.RFC3339Nano, f)
		if err != nil {
			t.Fatalf("line %q has no timestamp: %v", l, err)
		}
		if strings.HasSuffix(l, "second") {
			stamp = ts
		}
	}
	out.Reset()
	if err := s.eng.ReadLogs(ctx, id, engine.LogOptions{Tail: 1}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "third" {
		t.Errorf("ReadLogs tail 1 = %q, want third", got)
	}
	out.Reset()
	// Since has a resolution of a second in both APIs.
	if err := s.eng.ReadLogs(ctx, id, engine.LogOptions{Since: stamp.Truncate(time.Second)}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Contains(got, "first") || !strings.Contains(got, "second") {
		t.Errorf("ReadLogs since %v = %q, want the lines from second on", stamp, got)
	}
	// A follow of a running container ends with its context.
	run := s.spec(uniq("follow"), "sh", "-c", "echo up; sleep 60")
	rid := s.create(t, run)
	if err := s.eng.StartContainer(ctx, rid); err != nil {
		t.Fatal(err)
	}
	defer s.eng.StopContainer(ctx, rid, 0)
	fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var fo bytes.Buffer
	start := time.Now()
	if err := s.eng.ReadLogs(fctx, rid, engine.LogOptions{Follow: true}, &fo, nil); err != nil {
		t.Errorf("a follow stopped by its context: %v, want nil", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("a follow outlived its context by %v", time.Since(start))
	}
}

func (s *suite) testListImages(t *testing.T) {
	list, err := s.eng.ListImages(ctxT(t))
	if err != nil {
		t.Fatalf("ListImages: %v", err)
	}
	repo, _, _ := strings.Cut(s.o.ImageDigest, "@")
	found := slices.ContainsFunc(list, func(i engine.Image) bool {
		return slices.ContainsFunc(i.RepoDigests, func(d string) bool { return strings.HasPrefix(d, repo+"@") }) && i.ID != ""
	})
	if !found {
		t.Errorf("ListImages: the test image %s is not listed with its digest (%d images)", s.o.ImageDigest, len(list))
	}
}

func (s *suite) testStorage(t *testing.T) {
	info, err := s.eng.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// The log driver may be unsaid (Podman's Docker API leaves it out).
	if info.Storage.Root == "" || info.Runtime == "" {
		t.Errorf("info: storage root %q, runtime %q: want both", info.Storage.Root, info.Runtime)
	}
	if s.o.Kind == engine.KindPodman && (info.Storage.TotalBytes <= 0 || info.Storage.UsedBytes <= 0 || info.Storage.UsedBytes > info.Storage.TotalBytes) {
		t.Errorf("Podman's storage figures: %+v, want a used part of a total", info.Storage)
	}
}

func (s *suite) testSecurityOptionsReadBack(t *testing.T) {
	sp := s.spec(uniq("label"), "true")
	sp.SELinuxOptions = []string{"disable"}
	sp.NoNewPrivileges = true
	id := s.create(t, sp)
	c, err := s.eng.InspectContainer(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.SecurityOptions, "label=disable") {
		t.Errorf("security options read back = %q, want label=disable among them", c.SecurityOptions)
	}
}

// testOOMKilled: a container that outgrows its memory limit is killed
// (137) and inspect says the kernel did it; one that exits 137 by itself
// is not reported as killed. The runner tells an out-of-memory job from a
// failing one by this, and the platform learns its prediction from it.
func (s *suite) testOOMKilled(t *testing.T) {
	ctx := ctxT(t)
	for _, c := range []struct {
		name string
		cmd  []string
		want bool
	}{
		// dd allocates its block: 256 MiB under a 32 MiB limit.
		{"oom", []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"}, true},
		{"self", []string{"sh", "-c", "exit 137"}, false},
	} {
		sp := s.spec(uniq(c.name), c.cmd...)
		sp.Resources = engine.Resources{MemoryBytes: 32 << 20}
		id := s.create(t, sp)
		if err := s.eng.StartContainer(ctx, id); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		code, err := s.eng.WaitContainer(ctx, id)
		if err != nil {
			t.Fatalf("WaitContainer: %v", err)
		}
		ci, err := s.eng.InspectContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := c.want && s.o.NoOOMReport == ""
		if code != 137 || (ci.OOMKilled != want && !(c.want && s.o.NoOOMReport != "")) {
			t.Errorf("%s: exit %d, OOMKilled %v; want 137 and %v", c.name, code, ci.OOMKilled, want)
		}
		if c.want && s.o.NoOOMReport != "" {
			t.Logf("%s: OOMKilled %v (the engine is known not to report it: %s)", c.name, ci.OOMKilled, s.o.NoOOMReport)
		}
	}
}

// testSignal: a signal reaches the container's main process (the daemon
// asks the runner to drain with SIGUSR1).
func (s *suite) testSignal(t *testing.T) {
	ctx := ctxT(t)
	id := s.create(t, s.spec(uniq("signal"), "sh", "-c", `trap "exit 7" USR1; while :; do sleep 0.05; done`))
	if err := s.eng.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The shell sets its trap as it starts: send until it takes.
	done := make(chan int, 1)
	go func() {
		code, err := s.eng.WaitContainer(ctx, id)
		if err != nil {
			t.Errorf("WaitContainer: %v", err)
		}
		done <- code
	}()
	exited := func(code int) {
		if code != 7 {
			t.Errorf("exit %d after USR1, want 7 (the trap's)", code)
		}
		if err := s.eng.SignalContainer(ctx, "no-such-"+uniq("c"), "USR1"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("signal a missing container: %v, want ErrNotFound", err)
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := s.eng.SignalContainer(ctx, id, "USR1"); err != nil {
			// The previous one may have taken: the container is gone.
			select {
			case code := <-done:
				exited(code)
				return
			case <-time.After(5 * time.Second):
				t.Fatalf("SignalContainer: %v", err)
			}
		}
		select {
		case code := <-done:
			exited(code)
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the container never exited on USR1")
		}
	}
}

// testRename: a container renamed answers to its new name only; a taken
// name is a conflict.
func (s *suite) testRename(t *testing.T) {
	ctx := ctxT(t)
	a, b, renamed := uniq("rename-a"), uniq("rename-b"), uniq("renamed")
	s.create(t, s.spec(a, "true"))
	s.create(t, s.spec(b, "true"))
	if err := s.eng.RenameContainer(ctx, a, renamed); err != nil {
		t.Fatalf("RenameContainer: %v", err)
	}
	t.Cleanup(func() { s.eng.RemoveContainer(context.Background(), renamed, true) })
	if c, err := s.eng.InspectContainer(ctx, renamed); err != nil || c.Name != renamed {
		t.Errorf("inspect by the new name: %+v, %v", c, err)
	}
	if _, err := s.eng.InspectContainer(ctx, a); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("inspect by the old name: %v, want ErrNotFound", err)
	}
	if err := s.eng.RenameContainer(ctx, b, renamed); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("rename to a taken name: %v, want ErrConflict", err)
	}
}
