package platform

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/collectorhq/collector/api"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 365 * 24 * time.Hour
	renewWithin    = 30 * 24 * time.Hour
)

// loadTLS returns the server certificate and the pin of its CA: the given
// files, or a CA and server certificate generated (once) in the data dir.
func loadTLS(cfg Config, hosts []string, log *slog.Logger) (tls.Certificate, string, error) {
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return cert, "", fmt.Errorf("load --tls-cert/--tls-key: %w", err)
		}
		top, err := x509.ParseCertificate(cert.Certificate[len(cert.Certificate)-1])
		if err != nil {
			return cert, "", fmt.Errorf("parse --tls-cert: %w", err)
		}
		return cert, api.CAPin(top), nil
	}
	ca, caKey, err := loadOrCreateCA(cfg.DataDir, log)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	cert, err := loadOrCreateServerCert(cfg.DataDir, ca, caKey, hosts, time.Now(), log)
	return cert, api.CAPin(ca), err
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func loadOrCreateCA(dir string, log *slog.Logger) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if _, err := os.Stat(certPath); errors.Is(err, fs.ErrNotExist) {
		if err := createCA(certPath, keyPath); err != nil {
			return nil, nil, fmt.Errorf("create CA: %w", err)
		}
		log.Info("created platform CA", "path", certPath)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("CA key %s: not an ECDSA key", keyPath)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	return ca, key, err
}

func createCA(certPath, keyPath string) error {
	key, keyPEM, err := newKey()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Collector platform CA", Organization: []string{"Collector"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := writeSecretFile(keyPath, keyPEM); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// loadOrCreateServerCert reuses the server certificate while it covers hosts
// and is not about to expire; otherwise it issues a new one from the CA (the
// pin, which is the CA's, does not change).
func loadOrCreateServerCert(dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time, log *slog.Logger) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err == nil && covers(leaf, hosts) && leaf.NotAfter.Sub(now) > renewWithin && leaf.CheckSignatureFrom(ca) == nil {
			return pair, nil
		}
	}
	if err := createServerCert(certPath, keyPath, ca, caKey, hosts); err != nil {
		return tls.Certificate{}, fmt.Errorf("create server certificate: %w", err)
	}
	log.Info("created server certificate", "path", certPath, "hosts", hosts)
	return tls.LoadX509KeyPair(certPath, keyPath)
}

func covers(leaf *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// createServerCert issues a server certificate valid from now (real
// time: whatever clock decided to renew it).
func createServerCert(certPath, keyPath string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) error {
	key, keyPEM, err := newKey()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"Collector"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	// The chain file carries the CA too, so a collector can match its pin.
	var chain bytes.Buffer
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	os.Remove(keyPath)
	if err := writeSecretFile(keyPath, keyPEM); err != nil {
		return err
	}
	return os.WriteFile(certPath, chain.Bytes(), 0o644)
}

// certHosts lists the names the server certificate must cover.
func certHosts(cfg Config) []string {
	hosts := []string{"localhost", "127.0.0.1"}
	if h, _, err := net.SplitHostPort(cfg.Listen); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		} else if name, err := os.Hostname(); err == nil {
			hosts = append(hosts, name)
		}
	}
	if u, err := cfg.publicURL(); err == nil {
		hosts = append(hosts, u.Hostname())
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}
