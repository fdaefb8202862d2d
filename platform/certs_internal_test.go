package platform

import (
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/testutil"
)

// movable is a clock a test moves.
type movable struct {
	mu sync.Mutex
	t  time.Time
}

func (m *movable) now() time.Time { m.mu.Lock(); defer m.mu.Unlock(); return m.t }
func (m *movable) add(d time.Duration) {
	m.mu.Lock()
	m.t = m.t.Add(d)
	m.mu.Unlock()
}

func serialOf(t *testing.T, c *certs) string {
	t.Helper()
	cert, err := c.get(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := leafOf(cert)
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}

// TestGeneratedCertificateRenewedWhileRunning: a platform left running
// past its generated certificate's renewal point serves a new one from
// the same CA (the collectors' pin is unchanged); before it, the same.
func TestGeneratedCertificateRenewedWhileRunning(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	log := slog.New(slog.NewTextHandler(&testutil.Buffer{}, nil))
	first, pin, err := loadTLS(cfg, certHosts(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	clock := &movable{t: time.Now()}
	c := newCerts(cfg, first, pin, log, clock.now)
	before := serialOf(t, c)
	clock.add(300 * 24 * time.Hour)
	c.refresh(false)
	if serialOf(t, c) != before {
		t.Fatal("renewed 65 days before expiry, want the same certificate until 30 days before")
	}
	clock.add(40 * 24 * time.Hour) // 25 days left
	c.refresh(false)
	if serialOf(t, c) == before {
		t.Fatal("not renewed 25 days before expiry")
	}
	if _, pin2, err := loadTLS(cfg, certHosts(cfg), log); err != nil || pin2 != pin {
		t.Errorf("pin after the renewal = %s, %v; want the CA's, unchanged (%s)", pin2, err, pin)
	}
	if c.notAfter().Sub(time.Now()) < 300*24*time.Hour {
		t.Errorf("the renewed certificate expires %v, want about a year from now", c.notAfter())
	}
}

// TestOperatorCertificateReloaded: an operator's certificate is served
// again from its files when they change (or on SIGHUP, forced); a broken
// file leaves the current one served; one about to expire is warned of.
func TestOperatorCertificateReloaded(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, err := loadOrCreateCA(dir, slog.New(slog.NewTextHandler(&testutil.Buffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "op.crt"), filepath.Join(dir, "op.key")
	issue := func() {
		t.Helper()
		if err := createServerCert(certPath, keyPath, ca, caKey, []string{"platform.example"}); err != nil {
			t.Fatal(err)
		}
	}
	issue()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.TLSCert, cfg.TLSKey = dir, certPath, keyPath
	logs := &testutil.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	first, pin, err := loadTLS(cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	clock := &movable{t: time.Now()}
	c := newCerts(cfg, first, pin, log, clock.now)
	before := serialOf(t, c)
	c.refresh(false)
	if serialOf(t, c) != before {
		t.Fatal("reloaded unchanged files")
	}
	issue()
	later := time.Now().Add(time.Minute)
	os.Chtimes(certPath, later, later)
	c.refresh(false)
	renewed := serialOf(t, c)
	if renewed == before {
		t.Fatal("changed files not reloaded")
	}
	// A broken file: the current certificate stays.
	os.WriteFile(certPath, []byte("not a certificate"), 0o644)
	c.refresh(true)
	if serialOf(t, c) != renewed {
		t.Fatal("a broken file replaced the served certificate")
	}
	if !strings.Contains(logs.String(), "reloading --tls-cert/--tls-key failed") {
		t.Errorf("the failed reload was not logged:\n%s", logs.String())
	}
	clock.add(340 * 24 * time.Hour)
	c.refresh(false)
	if !strings.Contains(logs.String(), "expires soon") {
		t.Errorf("no warning 25 days before expiry:\n%s", logs.String())
	}
}
