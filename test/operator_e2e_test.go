package test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/joblogs"
	"github.com/collectorhq/collector/collector/ops"
	"github.com/collectorhq/collector/internal/env"
)

// The operator's commands on a collector host, end to end: the collector
// binary run on the host as the RPM's CLI would be, against the real
// platform process, the real Podman service and the collector installed
// by its installer container.

// installHost installs a collector as install does, with extra installer
// variables.
func installHost(t *testing.T, p *platformProc, k *kit, extra map[string]string) *host {
	t.Helper()
	h, vars, token := newHost(t, p, k)
	for key, v := range extra {
		vars[key] = v
	}
	h.prefix = extra[env.NamePrefix]
	out, err := h.runInstaller(vars, token)
	if err != nil {
		t.Fatalf("installer: %v\n%s", err, out)
	}
	t.Logf("installer:\n%s", out)
	h.open(t)
	return h
}

// hostRoot is a directory standing for the host's / in the checks that
// read its systemd configuration: with podman-restart.service and
// podman.socket enabled as `systemctl enable` links them, or not.
func hostRoot(t *testing.T, enabled bool) string {
	root := t.TempDir()
	wants := map[string]string{"default.target.wants": "podman-restart.service", "sockets.target.wants": "podman.socket"}
	for dir, unit := range wants {
		d := filepath.Join(root, "etc", "systemd", "system", dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if enabled {
			if err := os.Symlink("/usr/lib/systemd/system/"+unit, filepath.Join(d, unit)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// opsRun is one run of the collector's operator CLI.
type opsRun struct {
	out  string
	code int
}

// collectorCLI runs `collector ARGS` on the host with the test's dirs, as
// the RPM's /usr/bin/collector would run on a real host.
func (h *host) collectorCLI(t *testing.T, root, etc, stdin string, args ...string) opsRun {
	t.Helper()
	cmd := exec.Command(filepath.Join(world.bin, "collector"), args...)
	cmd.Env = append(os.Environ(), env.ConfigDir+"="+etc, env.StateDir+"="+h.state, env.EngineHost+"=unix://"+h.kit.socket,
		env.SecretDir+"="+h.kit.secretDir, env.HostRoot+"="+root)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	r := opsRun{out: string(out)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("collector %v: %v", args, err)
	}
	return r
}

// doctor runs `collector doctor --json` and decodes its report.
func (h *host) doctor(t *testing.T, root, etc string) (*ops.Report, int, string) {
	t.Helper()
	r := h.collectorCLI(t, root, etc, "", "doctor", "--json")
	var rep ops.Report
	// The report is the JSON object; the error line follows it.
	if err := json.NewDecoder(strings.NewReader(r.out)).Decode(&rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, r.out)
	}
	return &rep, r.code, r.out
}

func check(rep *ops.Report, id string) ops.Check {
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	return ops.Check{ID: id, Result: "missing"}
}

// copyConfig copies the config dir (modes kept) and edits config.json.
func copyConfig(t *testing.T, etc string, edit func(map[string]any)) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "etc-copy")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(etc)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(etc, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if de.Name() == config.ConfigFile {
			var m map[string]any
			json.Unmarshal(b, &m)
			edit(m)
			b, _ = json.MarshalIndent(m, "", "  ")
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// skewedProxy is the platform as seen through a clock moved by skew: a
// TLS reverse proxy on 127.0.0.1 with the platform's own certificate
// that rewrites the Date of every answer.
func skewedProxy(t *testing.T, p *platformProc, skew time.Duration) string {
	t.Helper()
	return certProxy(t, p, filepath.Join(p.dataDir, "server.crt"), filepath.Join(p.dataDir, "server.key"), skew)
}

// certProxy is skewedProxy serving the certificate of the given files.
func certProxy(t *testing.T, p *platformProc, certFile, keyFile string, skew time.Duration) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(p.url)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	rp.ModifyResponse = func(r *http.Response) error {
		r.Header.Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
		return nil
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "https://" + l.Addr().String()
}

// emulateHealthTimers runs what the systemd timers Podman creates for a
// container's health check run (`podman healthcheck run NAME`): this
// machine has no systemd, so the test plays the timer. The daemon runs
// the runner's check itself at every heartbeat.
func emulateHealthTimers(t *testing.T, k *kit) {
	t.Helper()
	for _, n := range []string{"collector-daemon", "collector-runner"} {
		k.run("healthcheck", "run", n)
	}
}

func TestOperatorPodman(t *testing.T) {
	need(t)
	k := podmanKit(t)
	p := startPlatform(t)
	// A short stall bound, so that a frozen runner turns unhealthy soon.
	h := installHost(t, p, k, map[string]string{env.RunnerStall: "40s"})
	waitFor(t, "collector active", 60*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	good := hostRoot(t, true)
	const secret = "e2e-operator-secret-5d1c08"

	t.Run("PodmanPsShowsHealthy", func(t *testing.T) {
		var ps string
		waitFor(t, "both containers (healthy) in podman ps", 60*time.Second, func() bool {
			emulateHealthTimers(t, k)
			ps, _ = k.run("ps", "--format", "{{.Names}} {{.Status}}")
			return regexp.MustCompile(`(?m)^collector-daemon Up .*\(healthy\)$`).MatchString(ps) &&
				regexp.MustCompile(`(?m)^collector-runner Up .*\(healthy\)$`).MatchString(ps)
		})
		t.Logf("podman ps:\n%s", ps)
	})

	t.Run("StatusAllGood", func(t *testing.T) {
		r := h.collectorCLI(t, good, h.etc, "", "status", "--json")
		var s ops.Status
		if err := json.NewDecoder(strings.NewReader(r.out)).Decode(&s); err != nil || r.code != 0 {
			t.Fatalf("status --json: exit %d, %v\n%s", r.code, err, r.out)
		}
		if s.Enrollment == nil || s.Enrollment.CollectorID != h.id || s.Enrollment.PlatformURL != p.url || !strings.HasPrefix(s.Enrollment.CAPin, "sha256:") {
			t.Errorf("enrollment: %+v", s.Enrollment)
		}
		if s.Platform == nil || !s.Platform.Reachable || s.Platform.LastHeartbeatAck == nil || time.Since(*s.Platform.LastHeartbeatAck) > time.Minute {
			t.Errorf("platform: %+v", s.Platform)
		}
		if !s.Engine.Reachable || s.Engine.Kind != "podman" || s.Engine.Storage == nil || s.Engine.Storage.FreeBytes <= 0 {
			t.Errorf("engine: %+v", s.Engine)
		}
		if len(s.Containers) != 2 || !s.UpToDate || len(s.Problems) != 0 {
			t.Errorf("containers %+v, up to date %v, problems %q", s.Containers, s.UpToDate, s.Problems)
		}
		for _, c := range s.Containers {
			if !c.Running || c.Health != "healthy" || !strings.HasPrefix(c.ImageDigest, "sha256:") || c.Version == "" || c.Restart != "always" {
				t.Errorf("container %+v", c)
			}
		}
		human := h.collectorCLI(t, good, h.etc, "", "status")
		if human.code != 0 || !strings.Contains(human.out, "status      OK") || !strings.Contains(human.out, "collector-runner") {
			t.Errorf("status: exit %d\n%s", human.code, human.out)
		}
		t.Logf("collector status:\n%s", human.out)
		// The heartbeat carries the container storage figures to the platform.
		hb := p.collector(t, h.id).LastHeartbeat
		if hb == nil || hb.Storage == nil || hb.Storage.TotalBytes <= 0 || hb.RunnerHealth == "" {
			t.Errorf("the platform's last heartbeat: %+v", hb)
		}
	})

	t.Run("DoctorAllPass", func(t *testing.T) {
		rep, code, out := h.doctor(t, good, h.etc)
		if code != 0 || rep.Failed != 0 || rep.Warned != 0 {
			t.Errorf("doctor on a healthy collector: exit %d, %d failed, %d warned\n%s", code, rep.Failed, rep.Warned, out)
		}
		for _, id := range []string{"config", "config-modes", "engine", "runtime", "selinux", "platform-dns", "platform-tcp", "platform-tls",
			"clock", "registry", "policy", "disk", "leftovers", "container-daemon", "container-runner", "boot", "logs"} {
			if c := check(rep, id); c.Result != ops.Pass {
				t.Errorf("check %s: %+v", id, c)
			}
		}
		human := h.collectorCLI(t, good, h.etc, "", "doctor")
		t.Logf("collector doctor:\n%s", human.out)
	})

	t.Run("DoctorFailsWhenRebootWouldLoseIt", func(t *testing.T) {
		rep, code, _ := h.doctor(t, hostRoot(t, false), h.etc)
		c := check(rep, "boot")
		if code != 1 || c.Result != ops.Fail || !strings.Contains(c.Fix, "systemctl enable podman-restart.service podman.socket") {
			t.Errorf("doctor without podman-restart.service enabled: exit %d, boot check %+v", code, c)
		}
	})

	var jobID string
	t.Run("LogsRedacted", func(t *testing.T) {
		integ := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 3, "token": secret})
		j := p.waitJob(t, p.runJob(t, integ).ID, 3*time.Minute)
		if j.State != api.JobSucceeded {
			t.Fatalf("job %+v", j)
		}
		jobID = j.ID
		r := h.collectorCLI(t, good, h.etc, "", "logs", jobID)
		if r.code != 0 || !strings.Contains(r.out, "run started") || !strings.Contains(r.out, joblogs.EndMarker) || strings.Contains(r.out, secret) {
			t.Errorf("collector logs %s: exit %d\n%s", jobID, r.code, r.out)
		}
		for _, role := range []string{"daemon", "runner"} {
			r := h.collectorCLI(t, good, h.etc, "", "logs", role, "--since", "10m")
			if r.code != 0 || !strings.Contains(r.out, role+" starting") || strings.Contains(r.out, secret) {
				t.Errorf("collector logs %s: exit %d\n%s", role, r.code, r.out)
			}
		}
		// A follow of a finished job's log ends by itself.
		start := time.Now()
		if r := h.collectorCLI(t, good, h.etc, "", "logs", "-f", jobID); r.code != 0 || time.Since(start) > 30*time.Second {
			t.Errorf("collector logs -f of a finished job: exit %d after %v", r.code, time.Since(start))
		}
		if r := h.collectorCLI(t, good, h.etc, "", "logs", "job_nosuch"); r.code != 4 {
			t.Errorf("collector logs of an unknown job: exit %d, want 4\n%s", r.code, r.out)
		}
	})

	t.Run("SupportBundleHoldsNoSecret", func(t *testing.T) {
		planted := plantSecrets(t, h, secret)
		file := filepath.Join(t.TempDir(), "bundle.tar.gz")
		r := h.collectorCLI(t, good, h.etc, "", "support-bundle", "-o", file)
		if r.code != 0 {
			t.Fatalf("support-bundle: exit %d\n%s", r.code, r.out)
		}
		files := readBundle(t, file)
		for _, want := range []string{"versions.json", "status.json", "doctor.json", "logs/install.log", "logs/collector-daemon.log",
			"logs/collector-runner.log", "inspect/collector-daemon.json", "inspect/collector-runner.json", "logs/jobs/" + jobID + ".log"} {
			if len(files[want]) == 0 {
				t.Errorf("the bundle has no %s (it has %d files)", want, len(files))
			}
		}
		for name, body := range files {
			for _, s := range planted {
				if strings.Contains(body, s) {
					t.Errorf("%s in the bundle holds the planted secret %.24q...", name, s)
				}
			}
		}
		if !strings.Contains(files["logs/jobs/"+jobID+".log"], "run started") || !strings.Contains(files["logs/jobs/job_planted.log"], ops.Redacted) {
			t.Errorf("job logs in the bundle:\n%s\n%s", files["logs/jobs/"+jobID+".log"], files["logs/jobs/job_planted.log"])
		}
	})

	t.Run("DoctorWrongPin", func(t *testing.T) {
		etc := copyConfig(t, h.etc, func(m map[string]any) { m["ca_pin"] = "sha256:" + strings.Repeat("ab", 32) })
		rep, code, _ := h.doctor(t, good, etc)
		if c := check(rep, "platform-tls"); code != 1 || c.Result != ops.Fail || !strings.Contains(c.Fix, "pinned") {
			t.Errorf("doctor with a wrong CA pin: exit %d, TLS check %+v", code, c)
		}
	})

	t.Run("DoctorClockSkew", func(t *testing.T) {
		for _, c := range []struct {
			skew time.Duration
			want ops.Result
			code int
		}{{2 * time.Hour, ops.Fail, 1}, {2 * time.Minute, ops.Warn, 0}, {-20 * time.Second, ops.Warn, 0}} {
			proxy := skewedProxy(t, p, c.skew)
			etc := copyConfig(t, h.etc, func(m map[string]any) { m["platform_url"] = proxy })
			rep, code, _ := h.doctor(t, good, etc)
			if got := check(rep, "clock"); got.Result != c.want || code != c.code {
				t.Errorf("platform clock moved %v: exit %d, clock check %+v; want %s, exit %d", c.skew, code, got, c.want, c.code)
			}
		}
	})

	t.Run("DoctorEngineStopped", func(t *testing.T) {
		k.stopService()
		defer func() {
			if err := k.startService(); err != nil {
				t.Fatalf("start the engine again: %v", err)
			}
		}()
		rep, code, _ := h.doctor(t, good, h.etc)
		c := check(rep, "engine")
		if code != 1 || c.Result != ops.Fail || !strings.Contains(c.Detail, h.kit.socket) || !strings.Contains(c.Fix, "systemctl enable --now podman.socket") {
			t.Errorf("doctor with the engine stopped: exit %d, engine check %+v", code, c)
		}
		if r := h.collectorCLI(t, good, h.etc, "", "status"); r.code != 3 {
			t.Errorf("status with the engine stopped: exit %d, want 3\n%s", r.code, r.out)
		}
	})

	t.Run("RunnerUnhealthyIsRestarted", func(t *testing.T) { runnerUnhealthyRestarted(t, p, h) })
	t.Run("RebootComesBack", func(t *testing.T) { rebootComesBack(t, p, h) })

	t.Run("UninstallDeregisterPurge", func(t *testing.T) {
		// Integrations are assigned: the platform refuses, nothing goes.
		r := h.collectorCLI(t, good, h.etc, p.token+"\n", "uninstall", "--deregister", "--purge")
		if r.code != 5 || !strings.Contains(r.out, "integration") {
			t.Fatalf("uninstall --deregister with integrations assigned: exit %d, want 5\n%s", r.code, r.out)
		}
		if _, err := h.eng.InspectContainer(context.Background(), "collector-daemon"); err != nil {
			t.Fatalf("a refused uninstall removed the daemon: %v", err)
		}
		var list api.IntegrationList
		p.cliJSON(&list, "integrations", "list")
		for _, in := range list.Integrations {
			if _, err := p.cli("integrations", "delete", in.ID); err != nil {
				t.Fatal(err)
			}
		}
		r = h.collectorCLI(t, good, h.etc, p.token+"\n", "uninstall", "--deregister", "--purge")
		if r.code != 0 || !strings.Contains(r.out, "deregistered") {
			t.Fatalf("uninstall --deregister --purge: exit %d\n%s", r.code, r.out)
		}
		t.Logf("collector uninstall:\n%s", r.out)
		ctx := context.Background()
		for _, n := range []string{"collector-daemon", "collector-runner"} {
			if _, err := h.eng.InspectContainer(ctx, n); err == nil {
				t.Errorf("%s is still there", n)
			}
		}
		if jobs, _ := h.eng.ListContainers(ctx, map[string]string{"io.collector.collector": h.id}); len(jobs) > 0 {
			t.Errorf("containers of the collector left: %+v", jobs)
		}
		if left, _ := os.ReadDir(h.kit.secretDir); len(left) > 0 {
			t.Errorf("job secrets left: %v", left)
		}
		for _, d := range []string{h.etc, h.state} {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("%s is still there", d)
			}
		}
		if _, err := p.cli("collectors", "show", h.id); err == nil {
			t.Errorf("the platform still has collector %s", h.id)
		}
		again := h.collectorCLI(t, good, h.etc, "", "uninstall", "--purge")
		if again.code != 0 || !strings.Contains(again.out, "nothing left to remove") {
			t.Errorf("second uninstall: exit %d\n%s", again.code, again.out)
		}
	})
}

// plantSecrets puts known secrets where a careless bundle would pick them
// up (an unused config field, a kept job log, the daemon's and runner's
// way) and returns them with the collector's own secrets (its private
// keys' lines).
func plantSecrets(t *testing.T, h *host, jobSecret string) []string {
	t.Helper()
	configSecret := fmt.Sprintf("planted-config-secret-%d", time.Now().UnixNano())
	b, err := os.ReadFile(filepath.Join(h.etc, config.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	// An unused field: the daemon and runner keep running as they are.
	m["engine"].(map[string]any)["host"] = configSecret
	b, _ = json.MarshalIndent(m, "", "  ")
	if err := config.WriteFile(filepath.Join(h.etc, config.ConfigFile), b); err != nil {
		t.Fatal(err)
	}
	planted := []string{configSecret, jobSecret}
	for _, f := range []string{config.IdentityFile, config.HPKEFile} {
		key, err := os.ReadFile(filepath.Join(h.etc, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(key), "\n") {
			if len(l) >= 16 && !strings.HasPrefix(l, "-----") {
				planted = append(planted, l)
			}
		}
	}
	token := "cacc_" + strings.Repeat("Zq9", 15)
	jwt := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJjb2xfcGxhbnRlZCJ9.c2lnbmF0dXJlLXBsYW50ZWQtaGVyZQ"
	planted = append(planted, token, jwt)
	// A kept job log a runner of some other version wrote carelessly.
	logs := filepath.Join(h.state, joblogs.Dir)
	os.MkdirAll(logs, 0o700)
	body := fmt.Sprintf("config %s\nkey line %s\ntoken %s jwt %s\nurl https://user:%s@example.invalid/\n", configSecret, planted[2], token, jwt, jobSecret)
	if err := os.WriteFile(filepath.Join(logs, "job_planted.log"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return planted
}

// readBundle reads every file of a tar.gz.
func readBundle(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[strings.TrimPrefix(hdr.Name, "collector-support/")] = string(b)
	}
	return files
}
