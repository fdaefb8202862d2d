package ldaptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // {SSHA} is what slapd's userPassword understands
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/env"
)

// Binaries the server needs: slapd and slapadd (Debian's slapd package),
// ldapsearch (ldap-utils).
var binaries = map[string]string{"slapd": "slapd", "slapadd": "slapd", "ldapsearch": "ldap-utils"}

// SizeLimit is the server's limit on searches that do not page.
const SizeLimit = 500

// Require reports what is missing to run a server, naming the Debian
// packages: nil when slapd and ldap-utils are installed.
func Require() error {
	for bin, pkg := range binaries {
		if _, err := lookPath(bin); err != nil {
			return fmt.Errorf("%s not found: apt-get install %s", bin, pkg)
		}
	}
	return nil
}

// lookPath finds a binary on PATH or in /usr/sbin (slapd lives there, and
// a test's PATH may lack it).
func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", bin)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// Need skips t when a component is missing, or fails it under CI=true.
func Need(t testing.TB) {
	t.Helper()
	if err := Require(); err != nil {
		if env.InCI() {
			t.Fatalf("CI=true and a test component is missing: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// Server is a running slapd.
type Server struct {
	Spec Spec
	Dir  string
	// URL is ldap:// (StartTLS) and LDAPSURL ldaps://, both on 127.0.0.1.
	URL, LDAPSURL string
	// CACert is the PEM of the CA that issued the server's certificate;
	// OtherCACert one that did not.
	CACert, OtherCACert string
	// BindDN and BindPassword are the read-only service account's.
	BindDN, BindPassword string
	// LDIF is the path of the loaded directory.
	LDIF string

	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// Start writes the config, certificates and LDIF under dir, loads the
// directory with slapadd and starts slapd on two free ports of 127.0.0.1.
func Start(dir string, spec Spec) (*Server, error) {
	if err := Require(); err != nil {
		return nil, err
	}
	s := &Server{Spec: spec, Dir: dir, BindDN: Reader + "," + spec.base(), BindPassword: "rd-" + randomHex(12), done: make(chan struct{})}
	for _, step := range []func() error{s.writeTLS, s.writeConfig, s.load, s.start} {
		if err := step(); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ssha is slapd's {SSHA} hash of a password.
func ssha(pw string) string {
	salt := make([]byte, 8)
	rand.Read(salt)
	h := sha1.Sum(append([]byte(pw), salt...)) //nolint:gosec
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}

func (s *Server) path(name string) string { return filepath.Join(s.Dir, name) }

func (s *Server) writeTLS() error {
	if err := os.MkdirAll(s.path("db"), 0o700); err != nil {
		return err
	}
	c, err := newCA("ldaptest CA")
	if err != nil {
		return err
	}
	other, err := newCA("ldaptest other CA")
	if err != nil {
		return err
	}
	cert, key, err := c.serverCert()
	if err != nil {
		return err
	}
	s.CACert, s.OtherCACert = string(c.pem), string(other.pem)
	for name, data := range map[string][]byte{"ca.crt": c.pem, "server.crt": cert, "server.key": key} {
		if err := os.WriteFile(s.path(name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) writeConfig() error {
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile %[1]s/ca.crt
TLSCertificateFile %[1]s/server.crt
TLSCertificateKeyFile %[1]s/server.key
database mdb
maxsize 4294967296
suffix "%[2]s"
rootdn "cn=admin,%[2]s"
rootpw %[3]s
directory %[1]s/db
sizelimit size.soft=%[4]d size.hard=%[4]d size.prtotal=unlimited
index objectClass eq
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="%[5]s" read by * none
`, s.Dir, s.Spec.base(), ssha(randomHex(16)), SizeLimit, s.BindDN)
	return os.WriteFile(s.path("slapd.conf"), []byte(conf), 0o600)
}

// load writes the LDIF and loads it offline.
func (s *Server) load() error {
	s.LDIF = s.path("directory.ldif")
	f, err := os.Create(s.LDIF)
	if err != nil {
		return err
	}
	if err := Generate(f, s.Spec, ssha(s.BindPassword)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	slapadd, _ := lookPath("slapadd")
	if out, err := exec.Command(slapadd, "-q", "-f", s.path("slapd.conf"), "-l", s.LDIF).CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd: %v\n%s", err, out)
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

// start runs slapd in the foreground (-d 0) and waits until it answers a
// StartTLS search by the reader.
func (s *Server) start() error {
	p1, err := freePort()
	if err != nil {
		return err
	}
	p2, err := freePort()
	if err != nil {
		return err
	}
	s.URL, s.LDAPSURL = "ldap://127.0.0.1:"+strconv.Itoa(p1), "ldaps://127.0.0.1:"+strconv.Itoa(p2)
	slapd, _ := lookPath("slapd")
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(slapd, "-d", "0", "-f", s.path("slapd.conf"), "-h", s.URL+"/ "+s.LDAPSURL+"/")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Search(context.Background(), true, "(objectClass=dcObject)", "dn")
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("slapd exited: %s", s.log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd did not answer in 30s: %v\n%s", err, s.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Search runs ldapsearch (ldap-utils) as the reader over StartTLS, trusting
// the server's CA, without paging unless paged; it returns the output.
func (s *Server) Search(ctx context.Context, paged bool, filter string, attrs ...string) (string, error) {
	ldapsearch, _ := lookPath("ldapsearch")
	args := []string{"-LLL", "-ZZ", "-x", "-H", s.URL, "-D", s.BindDN, "-y", s.passwordFile(), "-b", s.Spec.base()}
	if paged {
		args = append(args, "-E", "pr=200/noprompt")
	}
	cmd := exec.CommandContext(ctx, ldapsearch, append(append(args, filter), attrs...)...)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.path("ca.crt"), "LDAPTLS_REQCERT=demand")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ldapsearch %s: %w\n%s", filter, err, lastLines(out))
	}
	return string(out), nil
}

// passwordFile holds the reader's password for ldapsearch -y (never on a
// command line).
func (s *Server) passwordFile() string {
	p := s.path("reader.pw")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		os.WriteFile(p, []byte(s.BindPassword), 0o600)
	}
	return p
}

func lastLines(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

// Log is what slapd wrote.
func (s *Server) Log() string { return s.log.String() }

// Pid is slapd's process id (0 before it started).
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop stops slapd and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}
