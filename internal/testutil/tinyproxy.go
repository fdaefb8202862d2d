package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/env"
)

// Tinyproxy is a real proxy (Debian's tinyproxy) on its own 127.0.0.1
// port, with its own config and log in a temporary dir, allowing CONNECT
// to connectPort only and asking for user:password.
type Tinyproxy struct {
	// Addr is its host:port; Log the path of its log (LogLevel Connect:
	// a line per CONNECT and per proxied request).
	Addr, Log string
}

// StartTinyproxy starts one, stopped when t ends. Under CI=true a missing
// tinyproxy fails the test; elsewhere it skips.
func StartTinyproxy(t testing.TB, connectPort, user, password string) *Tinyproxy {
	t.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		if env.InCI() {
			t.Fatalf("tinyproxy is not installed (.ci/run installs it): %v", err)
		}
		t.Skipf("tinyproxy is not installed (apt-get install tinyproxy): %v", err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	tp := &Tinyproxy{Addr: fmt.Sprintf("127.0.0.1:%d", port), Log: filepath.Join(dir, "tinyproxy.log")}
	conf := fmt.Sprintf(`Port %d
Listen 127.0.0.1
Timeout 60
LogFile "%s"
LogLevel Connect
PidFile "%s"
MaxClients 20
Allow 127.0.0.1
ConnectPort %s
BasicAuth %s %s
`, port, tp.Log, filepath.Join(dir, "tinyproxy.pid"), connectPort, user, password)
	confPath := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", confPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", tp.Addr, time.Second)
		if err == nil {
			c.Close()
			return tp
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(tp.Log)
			t.Fatalf("tinyproxy does not listen on %s: %v\n%s", tp.Addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Connects counts the CONNECTs to addr in tinyproxy's log.
func (tp *Tinyproxy) Connects(t testing.TB, addr string) int {
	t.Helper()
	b, err := os.ReadFile(tp.Log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "CONNECT "+addr+" HTTP/1.1")
}

// Requests counts the plain-HTTP requests proxied whose URL starts with
// prefix (http://host:port/path...).
func (tp *Tinyproxy) Requests(t testing.TB, prefix string) int {
	t.Helper()
	b, err := os.ReadFile(tp.Log)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if _, req, ok := strings.Cut(line, "Request (file descriptor "); ok {
			if _, reqLine, ok := strings.Cut(req, "): "); ok {
				if _, url, ok := strings.Cut(reqLine, " "); ok && strings.HasPrefix(url, prefix) {
					n++
				}
			}
		}
	}
	return n
}
