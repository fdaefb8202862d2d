// Package pgtest runs a real PostgreSQL server (Debian's postgresql
// package) for tests: one server per test binary, started by Main from
// TestMain in a temporary directory on a free port of 127.0.0.1, and one
// fresh database per test (NewDB).
//
// The server is for tests only: it runs with fsync=off (a crash of the
// machine may lose it; nothing outlives the test binary anyway) and trusts
// every local connection. It never touches /etc or the system's cluster.
// Run as root, it runs initdb and postgres as the postgres system user the
// package creates (PostgreSQL refuses to run as root).
//
// A missing PostgreSQL skips the tests that need one, or fails them under
// CI=true, like integrations/ldap/ldaptest. The package talks to the server
// with the package's own psql, not a Go driver: SQL drivers belong in the
// backend packages (cmd's TestSQLOnlyInBackends).
package pgtest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/env"
)

// binDir finds the newest /usr/lib/postgresql/<version>/bin holding
// postgres, initdb and psql, or a directory on PATH holding all three.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest version first: compare the version numerically.
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	if p, err := exec.LookPath("postgres"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if hasAll(d, "postgres", "initdb", "psql") {
			return d, nil
		}
	}
	return "", errors.New("postgres, initdb and psql not found (in /usr/lib/postgresql/*/bin or on PATH): apt-get install postgresql")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func hasAll(dir string, bins ...string) bool {
	for _, b := range bins {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// runAs is the user the server runs as: nil for the current user, the
// postgres system user when the current one is root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres user to run the server as (PostgreSQL refuses root): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres user has IDs %q/%q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Require reports what is missing to run a server, naming the Debian
// package: nil when PostgreSQL is installed (and, as root, its postgres
// user exists).
func Require() error {
	if _, err := binDir(); err != nil {
		return err
	}
	_, err := runAs()
	return err
}

// Need skips t when PostgreSQL is missing, or fails it under CI=true.
func Need(t testing.TB) {
	t.Helper()
	if err := Require(); err != nil {
		if env.InCI() {
			t.Fatalf("CI=true and a test component is missing: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// Server is a running PostgreSQL.
type Server struct {
	// Dir holds the data directory, the socket and the log.
	Dir string
	// Host and Port are where it listens (127.0.0.1).
	Host string
	Port int

	bin   string
	cred  *syscall.Credential
	cmd   *exec.Cmd
	done  chan struct{}
	log   *bytes.Buffer
	logMu sync.Mutex
	dbs   atomic.Int64
}

// Start runs initdb in a new temporary directory and starts postgres on a
// free port of 127.0.0.1 (and a Unix socket in the directory), with
// fsync=off: tests only. It returns once the server accepts connections.
func Start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempRoot(cred), "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Host: "127.0.0.1", bin: bin, cred: cred, done: make(chan struct{}), log: &bytes.Buffer{}}
	for _, step := range []func() error{s.initdb, s.start} {
		if err := step(); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

// tempRoot is where the server's directory goes: the usual temporary
// directory, unless the server runs as another user who could not reach
// it (a TMPDIR under root's home), then /tmp.
func tempRoot(cred *syscall.Credential) string {
	root := os.TempDir()
	if cred == nil {
		return root
	}
	for d := root; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return root
		}
	}
}

func (s *Server) path(name string) string { return filepath.Join(s.Dir, name) }

// command runs a server binary as the server's user, in its directory.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (s *Server) initdb() error {
	if s.cred != nil {
		if err := os.Chown(s.Dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	out, err := s.command("initdb", "-D", s.path("data"), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedWriter struct {
	s *Server
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.logMu.Lock()
	defer w.s.logMu.Unlock()
	return w.s.log.Write(p)
}

// start runs postgres in the foreground and waits until it accepts
// connections (psql runs a query).
func (s *Server) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	s.cmd = s.command("postgres", "-D", s.path("data"),
		"-c", "listen_addresses="+s.Host, "-p", strconv.Itoa(port), "-k", s.Dir,
		// Tests only: no fsync, so a crash of the machine may lose the
		// cluster (it is thrown away at the end anyway).
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "log_min_messages=warning",
		// What benchmarks count (UsageOf): every statement's time and WAL.
		"-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.max=1000")
	s.cmd.Stdout, s.cmd.Stderr = lockedWriter{s}, lockedWriter{s}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := s.psql("postgres", "SELECT 1")
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited: %s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections in 60s: %v\n%s", err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// psql runs one statement on database db as the superuser, over TCP.
func (s *Server) psql(db, sql string) (string, error) {
	cmd := exec.Command(filepath.Join(s.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", s.Host, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", db, "-c", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("psql %q: %w: %s", sql, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Exec runs one SQL statement on database db as the superuser and returns
// psql's unaligned output.
func (s *Server) Exec(db, sql string) (string, error) { return s.psql(db, sql) }

// URL is the connection URL of database db, as the superuser.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), Path: "/" + db}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

// CreateDB creates a new, empty database and returns its name.
func (s *Server) CreateDB() (string, error) {
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), s.dbs.Add(1))
	if _, err := s.psql("postgres", "CREATE DATABASE "+name+" STRATEGY FILE_COPY"); err != nil {
		return "", err
	}
	return name, nil
}

// DropDB drops a database, closing what is still connected to it.
func (s *Server) DropDB(name string) error {
	_, err := s.psql("postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}

// Log is what postgres wrote.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// Stop stops postgres (a fast shutdown), waits for it and removes its
// directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	os.RemoveAll(s.Dir)
}

// The test binary's server, started by Main.
var (
	server   *Server
	startErr error
)

// Main starts the test binary's server (when PostgreSQL is installed),
// runs the tests and stops it. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without PostgreSQL the tests still run: NewDB skips (or fails, under
// CI=true) the ones that need a database. Under -short no server starts
// and they skip.
func Main(m *testing.M) int {
	flag.Parse() // for testing.Short
	if testing.Short() {
		return m.Run() // each test skips
	}
	if startErr = Require(); startErr == nil {
		server, startErr = Start()
	}
	code := m.Run()
	if server != nil {
		server.Stop()
	}
	return code
}

// Shared returns the server Main started, skipping t (failing it under
// CI=true) when PostgreSQL is missing and failing it when the server did
// not start.
func Shared(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL: not in -short")
	}
	Need(t)
	if server == nil {
		if startErr == nil {
			t.Fatal("pgtest: no server: call pgtest.Main from TestMain")
		}
		t.Fatalf("pgtest: the server did not start: %v", startErr)
	}
	return server
}

// NewDB creates a database for t on the shared server, dropped when t
// ends, and returns its connection URL.
func NewDB(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	name, err := s.CreateDB()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.DropDB(name); err != nil {
			t.Logf("pgtest: %v", err)
		}
	})
	return s.URL(name)
}
