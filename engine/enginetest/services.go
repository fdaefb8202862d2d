package enginetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// containersConf is the test containers.conf: explicit ulimits (the host's
// defaults are above its hard limit), runc (crun refuses the hybrid cgroup
// layout), cgroupfs and file events (no systemd).
const containersConf = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`

// Podman is a private Podman API service with its own storage. Its socket
// sits alone in a directory of its own, as /run/podman/podman.sock does,
// so that a container can mount the directory without the storage.
type Podman struct {
	Dir    string
	Socket string
	env    []string
	args   []string
	proc   *process
}

// StartPodman starts `podman system service` with storage under dir. The
// registries named in insecure are reached over plain HTTP, for clients
// (the Docker-compatible API) that cannot ask for it per pull.
func StartPodman(dir string, insecure ...string) (*Podman, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "containers.conf")
	regs := filepath.Join(dir, "registries.conf")
	if err := writeFile(conf, containersConf); err != nil {
		return nil, err
	}
	regsConf := "unqualified-search-registries = []\n"
	for _, r := range insecure {
		regsConf += fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", r)
	}
	if err := writeFile(regs, regsConf); err != nil {
		return nil, err
	}
	p := &Podman{
		Dir:    dir,
		Socket: filepath.Join(dir, "sock", "podman.sock"),
		env: []string{
			"CONTAINERS_CONF=" + conf,
			"CONTAINERS_REGISTRIES_CONF=" + regs,
			"TMPDIR=" + filepath.Join(dir, "tmp"),
		},
	}
	for _, d := range []string{"tmp", "sock"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	p.args = append(p.globalArgs(), "system", "service", "--time=0", "unix://"+p.Socket)
	if err := p.StartService(); err != nil {
		return nil, err
	}
	return p, nil
}

// StartService starts the API service at p.Socket and waits until it
// answers. The log of every start is appended to podman.log.
func (p *Podman) StartService() error {
	proc, err := start("podman service", filepath.Join(p.Dir, "podman.log"), p.env, p.args...)
	if err != nil {
		return err
	}
	p.proc = proc
	return waitFor(proc, "podman service", func() error { return pingUnix(p.Socket, "/libpod/_ping") })
}

// StopService stops the API service alone, as `systemctl stop podman`
// does: containers keep running under their conmon. StartService starts
// it again at the same socket, which the service creates anew (a new
// inode).
func (p *Podman) StopService() { p.proc.stopLeader() }

// StorageDirs are the directories on which the service keeps its state:
// storage root, run root, temporary files and its log.
func (p *Podman) StorageDirs() []string { return []string{p.Dir} }

func (p *Podman) globalArgs() []string {
	return []string{"podman", "--root", filepath.Join(p.Dir, "root"), "--runroot", filepath.Join(p.Dir, "runroot"), "--runtime", "runc"}
}

// URI is the service's address for engine backends.
func (p *Podman) URI() string { return "unix://" + p.Socket }

// CLI returns a podman command on the same storage as the service.
func (p *Podman) CLI(args ...string) *exec.Cmd {
	g := p.globalArgs()
	cmd := exec.Command(g[0], append(g[1:], args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	return cmd
}

// Run runs a podman CLI command and returns its combined output.
func (p *Podman) Run(args ...string) (string, error) {
	out, err := p.CLI(args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %v: %w: %s", args, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Stop removes what the service holds, stops it and deletes its storage.
func (p *Podman) Stop() error {
	if p == nil {
		return nil
	}
	p.Run("rm", "--all", "--force", "--time", "0")
	p.Run("secret", "rm", "--all")
	p.Run("rmi", "--all", "--force")
	p.proc.stop()
	return removeAll(p.Dir)
}

// Dockerd is a private dockerd with its own data and exec roots. Its
// socket sits alone in a directory of its own.
type Dockerd struct {
	Dir    string
	Socket string
	args   []string
	proc   *process
}

// StartDockerd starts dockerd with no bridge and no iptables rules, and
// with live restore, so that its containers outlive a restart of the
// daemon, as on hosts that set it.
func StartDockerd(dir string) (*Dockerd, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sock"), 0o700); err != nil {
		return nil, err
	}
	d := &Dockerd{Dir: dir, Socket: filepath.Join(dir, "sock", "docker.sock")}
	conf := filepath.Join(dir, "daemon.json")
	if err := writeFile(conf, `{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 1024}, "nproc": {"Name": "nproc", "Soft": 1024, "Hard": 1024}}}`); err != nil {
		return nil, err
	}
	d.args = []string{"dockerd", "--host", "unix://" + d.Socket,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "--config-file", conf,
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false",
		"--userland-proxy=false", "--exec-opt", "native.cgroupdriver=cgroupfs", "--live-restore"}
	if err := d.StartService(); err != nil {
		return nil, err
	}
	return d, nil
}

// StartService starts dockerd at d.Socket and waits until it answers; the
// log of every start is appended to dockerd.log.
func (d *Dockerd) StartService() error {
	proc, err := start("dockerd", filepath.Join(d.Dir, "dockerd.log"), nil, d.args...)
	if err != nil {
		return err
	}
	d.proc = proc
	return waitFor(proc, "dockerd", func() error { return pingUnix(d.Socket, "/_ping") })
}

// StopService stops dockerd and its containerd; with live restore the
// containers keep running. StartService starts it again at the same
// socket, which dockerd creates anew (a new inode).
func (d *Dockerd) StopService() { d.proc.stopLeader() }

// StorageDirs are the directories on which dockerd keeps its state: data
// root, exec root and its log.
func (d *Dockerd) StorageDirs() []string { return []string{d.Dir} }

// URI is the daemon's address for engine backends.
func (d *Dockerd) URI() string { return "unix://" + d.Socket }

// Stop stops dockerd (its containers die with it) and deletes its storage.
func (d *Dockerd) Stop() error {
	if d == nil {
		return nil
	}
	d.proc.stop()
	return removeAll(d.Dir)
}

// Registry is Debian's docker-registry (distribution 2.8) on 127.0.0.1.
type Registry struct {
	Dir  string
	Addr string // 127.0.0.1:PORT
	proc *process
}

// StartRegistry starts a registry on a free port of 127.0.0.1.
func StartRegistry(dir string) (*Registry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Registry{Dir: dir, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	conf := filepath.Join(dir, "config.yml")
	if err := writeFile(conf, fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), r.Addr)); err != nil {
		return nil, err
	}
	proc, err := start("registry", filepath.Join(dir, "registry.log"), nil, "docker-registry", "serve", conf)
	if err != nil {
		return nil, err
	}
	r.proc = proc
	if err := waitFor(proc, "registry", func() error {
		c, err := net.DialTimeout("tcp", r.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// Stop stops the registry and deletes its storage.
func (r *Registry) Stop() error {
	if r == nil {
		return nil
	}
	r.proc.stop()
	return removeAll(r.Dir)
}

// Stack is the set of real components a test binary starts under one
// temporary folder: a registry on 127.0.0.1, a Podman service that reaches
// it over plain HTTP, and a dockerd when asked for.
type Stack struct {
	Dir      string
	Registry *Registry
	Podman   *Podman
	Dockerd  *Dockerd // nil unless asked for
	// SecretDir is a directory on a tmpfs (/dev/shm) for the engine
	// backends' secret files.
	SecretDir string
}

// StartStack checks the programs are installed and starts the stack in a
// new folder named after prefix. On an error, the returned stack holds
// what did start: Stop it all the same.
func StartStack(prefix string, withDocker bool) (*Stack, error) {
	need := []string{"podman", "runc", "docker-registry", "busybox"}
	if withDocker {
		need = append(need, "dockerd", "docker")
	}
	s := &Stack{}
	if err := Require(need...); err != nil {
		return s, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return s, err
	}
	s.Dir = dir
	if s.SecretDir, err = os.MkdirTemp("/dev/shm", prefix+"secrets-"); err != nil {
		return s, fmt.Errorf("secret dir on /dev/shm (a tmpfs): %w", err)
	}
	if s.Registry, err = StartRegistry(filepath.Join(dir, "registry")); err != nil {
		return s, err
	}
	if s.Podman, err = StartPodman(filepath.Join(dir, "podman"), s.Registry.Addr); err != nil {
		return s, err
	}
	if withDocker {
		if s.Dockerd, err = StartDockerd(filepath.Join(dir, "docker")); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Stop stops what the stack started and removes its folder.
func (s *Stack) Stop() {
	if s == nil {
		return
	}
	for _, stop := range []func() error{s.Dockerd.Stop, s.Podman.Stop, s.Registry.Stop} {
		if err := stop(); err != nil {
			fmt.Fprintf(os.Stderr, "harness teardown: %v\n", err)
		}
	}
	if s.Dir != "" {
		removeAll(s.Dir)
	}
	if s.SecretDir != "" {
		os.RemoveAll(s.SecretDir)
	}
}
