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

	mu     sync.Mutex
	mod    time.Time // the operator's files' newest modification time
	warned time.Time // when the last expiry warning was logged
}

// expiryWarning is how long before expiry an operator's certificate is
// warned of (the generated one is renewed within renewWithin).
const expiryWarning = 30 * 24 * time.Hour

func newCerts(cfg Config, first tls.Certificate, log *slog.Logger, now func() time.Time) *certs {
	c := &certs{cfg: cfg, hosts: certHosts(cfg), log: log, now: now}
	c.cur.Store(&first)
	c.mod = c.filesModified()
	return c
}

// get is tls.Config.GetCertificate.
func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

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
		leaf, err := leafOf(c.cur.Load())
		if err == nil && leaf.NotAfter.Sub(now) > renewWithin {
			return
		}
		ca, caKey, err := loadOrCreateCA(c.cfg.DataDir, c.log)
		if err == nil {
			var cert tls.Certificate
			if cert, err = loadOrCreateServerCert(c.cfg.DataDir, ca, caKey, c.hosts, now, c.log); err == nil {
				c.cur.Store(&cert)
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
