package platform

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/files"
)

// certs serves the platform's TLS certificate and keeps it current while
// the platform runs: the certificate the platform made from its CA is
// issued again before it expires (the CA, and so the collectors' pin, stay
// the same); an operator's own certificate (--tls-cert) is loaded again
// when its files change or on SIGHUP. A certificate that cannot be loaded
// leaves the current one in place, said in the log.
type certs struct {
	cfg   Config
	hosts []string
	log   *slog.Logger
	now   func() time.Time

	cur atomic.Pointer[tls.Certificate]
	pin atomic.Pointer[string]  // the pin of cur's CA
	ca  atomic.Pointer[caState] // the CA files, when the CA is the platform's own

	mu        sync.Mutex
	caStamp   string    // the CA files as last read (generated certificates)
	caChecked time.Time // when they were last looked at
	mod       time.Time // the operator's files' newest modification time
	warned    time.Time // when the last expiry warning was logged
}

// expiryWarning is how long before expiry an operator's certificate is
// warned of (the generated one is renewed within renewWithin).
const expiryWarning = 30 * 24 * time.Hour

func newCerts(cfg Config, first tls.Certificate, pin string, log *slog.Logger, now func() time.Time) *certs {
	c := &certs{cfg: cfg, hosts: certHosts(cfg), log: log, now: now}
	c.cur.Store(&first)
	c.pin.Store(&pin)
	c.mod = c.filesModified()
	if cfg.TLSCert == "" {
		c.mu.Lock()
		c.checkCALocked()
		c.mu.Unlock()
	}
	return c
}

// get is tls.Config.GetCertificate: after `platform keys ca switch` the
// next handshake gets a certificate of the new CA, without a restart.
func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.look()
	return c.cur.Load(), nil
}

// look reads the CA files again, at most once a second, when the
// platform's CA is its own.
func (c *certs) look() {
	if c.cfg.TLSCert == "" && c.mu.TryLock() {
		if now := time.Now(); now.Sub(c.caChecked) >= time.Second {
			c.caChecked = now
			c.checkCALocked()
		}
		c.mu.Unlock()
	}
}

// caPins is the CA section of the platform's key set, and whether a CA
// rotation is under way (docs/auth.md, "Rotating the platform CA"); with
// an operator's certificate, its top certificate's pin, never rotating.
func (c *certs) caPins(now time.Time) (*crypto.CAPins, bool) {
	c.look()
	if st := c.ca.Load(); st != nil {
		return st.pins(now)
	}
	return &crypto.CAPins{Current: *c.pin.Load()}, false
}

// caPin is the pin of the CA the served certificate comes from: what
// enrollment tokens and install commands carry.
func (c *certs) caPin() string {
	c.look()
	return *c.pin.Load()
}

// checkCALocked issues the server certificate again from the current CA
// when the CA files changed (a CA switch). Files that do not load (a
// switch between its renames) leave the certificate served, and are read
// again at the next look.
func (c *certs) checkCALocked() {
	stamp := files.Stamp(c.cfg.DataDir, caFiles...)
	if stamp == c.caStamp {
		return
	}
	st, err := readCAState(c.cfg.DataDir)
	if err != nil {
		c.log.Warn("the CA files changed and do not read (yet): serving the current certificate", "err", err)
		return
	}
	ca, caKey, err := loadOrCreateCA(c.cfg.DataDir, c.log)
	if err != nil {
		c.log.Warn("the CA files changed and do not load (yet): serving the current certificate", "err", err)
		return
	}
	c.caStamp = stamp
	c.ca.Store(st)
	if pin := api.CAPin(ca); pin != *c.pin.Load() {
		cert, err := loadOrCreateServerCert(c.cfg.DataDir, ca, caKey, c.hosts, c.now(), c.log)
		if err != nil {
			c.log.Error("issuing the server certificate from the new CA failed; serving the current one", "err", err)
			c.caStamp = ""
			return
		}
		c.cur.Store(&cert)
		c.pin.Store(&pin)
		c.log.Info("serving a certificate of the platform's new CA (collectors pinned it when it was announced)", "ca_pin", pin)
	}
}

// notAfter is when the served certificate expires.
func (c *certs) notAfter() time.Time {
	if leaf, err := leafOf(c.cur.Load()); err == nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

func leafOf(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("no certificate")
	}
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// refresh renews or reloads the certificate if it is due (force: reload an
// operator's files whatever their time, as SIGHUP asks).
func (c *certs) refresh(force bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.cfg.TLSCert == "" {
		c.checkCALocked()
		leaf, err := leafOf(c.cur.Load())
		if err == nil && leaf.NotAfter.Sub(now) > renewWithin {
			return
		}
		ca, caKey, err := loadOrCreateCA(c.cfg.DataDir, c.log)
		if err == nil {
			var cert tls.Certificate
			if cert, err = loadOrCreateServerCert(c.cfg.DataDir, ca, caKey, c.hosts, now, c.log); err == nil {
				c.cur.Store(&cert)
				pin := api.CAPin(ca)
				c.pin.Store(&pin)
				c.log.Info("server certificate renewed from the platform's CA (the collectors' pin is the CA's: unchanged)", "expires", c.notAfter())
				return
			}
		}
		c.log.Error("renewing the server certificate failed; serving the current one", "err", err, "expires", c.notAfter())
		return
	}
	if mod := c.filesModified(); force || mod.After(c.mod) {
		cert, err := tls.LoadX509KeyPair(c.cfg.TLSCert, c.cfg.TLSKey)
		if err != nil {
			c.log.Error("reloading --tls-cert/--tls-key failed; serving the current certificate", "err", err)
			return
		}
		c.mod = mod
		c.cur.Store(&cert)
		if top, err := x509.ParseCertificate(cert.Certificate[len(cert.Certificate)-1]); err == nil {
			pin := api.CAPin(top)
			c.pin.Store(&pin)
		}
		c.log.Info("server certificate reloaded", "path", c.cfg.TLSCert, "expires", c.notAfter())
	}
	if left := c.notAfter().Sub(now); left < expiryWarning && now.Sub(c.warned) > 24*time.Hour {
		c.warned = now
		c.log.Warn("the server certificate expires soon: replace --tls-cert and --tls-key (the platform reloads them on change or SIGHUP)",
			"expires", c.notAfter(), "left", left.Round(time.Hour))
	}
}

// filesModified is the newest modification time of the operator's files.
func (c *certs) filesModified() time.Time {
	var t time.Time
	for _, p := range []string{c.cfg.TLSCert, c.cfg.TLSKey} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// reloadOnHUP reloads an operator's certificate on SIGHUP until ctx ends.
func (s *Server) reloadOnHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			s.log.Info("SIGHUP: reloading the server certificate")
			s.certs.refresh(true)
		case <-ctx.Done():
			return
		}
	}
}
