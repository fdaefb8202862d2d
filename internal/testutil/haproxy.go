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

// HAProxy is a real load balancer (Debian's haproxy) on addr, passing TLS
// through to its backends (TCP mode: clients pin the backends' CA) and
// health-checking each with GET /healthz over TLS verified against caFile.
type HAProxy struct {
	Addr string
	cmd  *exec.Cmd
	log  *Buffer
}

// StartHAProxy starts one in the foreground, stopped when t ends. A
// backend is out after two failed checks 300 ms apart, and back after one
// good one; a connection to a backend that refuses is tried on another.
// Under CI=true a missing haproxy fails the test; elsewhere it skips.
func StartHAProxy(t testing.TB, addr, caFile string, backends ...string) *HAProxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if env.InCI() {
			t.Fatalf("haproxy is not installed (.ci/run installs it): %v", err)
		}
		t.Skipf("haproxy is not installed (apt-get install haproxy): %v", err)
	}
	dir := t.TempDir()
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "\tserver replica%d %s\n", i, b)
	}
	conf := fmt.Sprintf(`global
	maxconn 4096
defaults
	mode tcp
	timeout connect 2s
	timeout client 10m
	timeout server 10m
	retries 3
	option redispatch
frontend platform
	bind %s
	default_backend replicas
backend replicas
	balance roundrobin
	option httpchk GET /healthz
	http-check expect status 200
	default-server check check-ssl verify required ca-file %s inter 300ms fall 2 rise 1
%s`, addr, caFile, servers.String())
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &HAProxy{Addr: addr, log: &Buffer{}}
	h.cmd = exec.Command(bin, "-db", "-f", path)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		h.cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen on %s: %v\n%s", addr, err, h.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log is what haproxy wrote (its health check changes among it).
func (h *HAProxy) Log() string { return h.log.String() }
