package enginetest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/env"
)

// skipReason is why this test binary's components could not start (outside
// CI); Need skips with it.
var skipReason string

// Main runs a test binary whose tests need real components: setup starts
// them. If it fails, the run fails under CI (a missing component is never a
// skip there) and elsewhere every test that calls Need skips with the
// reason. teardown always runs, and must cope with a partial setup.
func Main(m *testing.M, name string, setup func() error, teardown func()) {
	flag.Parse()
	if testing.Short() {
		// make test-unit: no engine, registry or root; Need skips.
		skipReason = "-short (make test-unit) starts no real component"
		os.Exit(m.Run())
	}
	if err := setup(); err != nil {
		if InCI() {
			fmt.Fprintf(os.Stderr, "%s harness: %v\n", name, err)
			teardown()
			os.Exit(1)
		}
		skipReason = err.Error()
	}
	code := m.Run()
	teardown()
	os.Exit(code)
}

// Need skips t when Main could not start the components.
func Need(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skipf("real components unavailable: %s", skipReason)
	}
}

// InCI reports whether this is a CI run, where a missing component fails
// the run instead of skipping.
func InCI() bool { return env.InCI() }

// Require returns an error naming each program not on PATH.
func Require(programs ...string) error {
	var missing []string
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not installed: %s (apt-get install podman runc docker.io docker-registry busybox-static)", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return errors.New("the engine harness runs rootful engines and needs root")
	}
	return nil
}

// process is a background server started by the harness.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(name, logPath string, env []string, args ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so a stop reaches its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM to the process group, then SIGKILL after 15 s.
func (p *process) stop() {
	if p == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// stopLeader sends SIGTERM to the process alone (not its group), then
// SIGKILL after 15 s: what a service manager's stop of the service does,
// leaving what it started in the background running.
func (p *process) stopLeader() {
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports an early exit with the tail of the process's log.
func (p *process) exited() error {
	select {
	case <-p.done:
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		return fmt.Errorf("%s exited early: %s", p.name, strings.Join(lines, "\n"))
	default:
		return nil
	}
}

// waitFor polls ready until it succeeds, the process dies or 60 s pass.
func waitFor(p *process, what string, ready func() error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if e := p.exited(); e != nil {
			return e
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("%s not ready after 60 s: %v (log: %s)", what, err, p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pingUnix(socket, path string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://d" + path)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// unmountUnder lazily unmounts every mount below dir, deepest first, so the
// folder of a stopped engine can be removed.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], dir+"/") {
			mounts = append(mounts, fields[1])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mounts {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// removeAll removes dir after unmounting what engines left below it.
func removeAll(dir string) error {
	unmountUnder(dir)
	return os.RemoveAll(dir)
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
