package api

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// CAPin returns "sha256:<hex>" of the SHA-256 of cert's SubjectPublicKeyInfo
// DER: the pin install commands carry (as kubeadm's discovery hash does).
func CAPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ErrPinMismatch: no certificate the server sent matches the pin.
var ErrPinMismatch = errors.New("platform certificate does not match the CA pin")

// PinnedTLSConfig trusts exactly the CA whose CAPin is pin, which the server
// must send in its chain, and checks the server name against the leaf as
// usual.
func PinnedTLSConfig(pin string) (*tls.Config, error) {
	if !strings.HasPrefix(pin, "sha256:") || len(pin) != len("sha256:")+64 {
		return nil, fmt.Errorf("CA pin %q: want sha256:<64 hex digits>", pin)
	}
	return PinsTLSConfig(func() []string { return []string{pin} }), nil
}

// PinsTLSConfig is PinnedTLSConfig with the pins read at each handshake:
// any of them may be the server's CA. A collector accepts two during a
// rotation of the platform's CA (docs/auth.md, "Rotating the platform
// CA"), and drops the old one when its grace ends.
func PinsTLSConfig(pins func() []string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection below, which also checks the name
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs, pins())
		},
	}
}

func verifyPinned(cs tls.ConnectionState, pins []string) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrPinMismatch
	}
	roots := x509.NewCertPool()
	found := false
	for _, c := range cs.PeerCertificates {
		if c.IsCA && slices.Contains(pins, CAPin(c)) {
			roots.AddCert(c)
			found = true
		}
	}
	if !found {
		return ErrPinMismatch
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, DNSName: cs.ServerName, CurrentTime: time.Now(),
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPinMismatch, err)
	}
	return nil
}

// CATLSConfig trusts the CA certificates in the PEM file at path, and
// those of the optional files that exist.
func CATLSConfig(path string, optional ...string) (*tls.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	for _, p := range optional {
		if b, err := os.ReadFile(p); err == nil {
			pool.AppendCertsFromPEM(b)
		}
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// HTTPClient returns an *http.Client using tc. It has no overall timeout:
// the API clients give each call a deadline that grows with its body
// (Timeouts), since a fixed one cut large uploads on slow uplinks. Dial and
// TLS handshake keep their bounds, and an HTTP/2 connection that stops
// answering is pinged, then closed.
func HTTPClient(tc *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.ForceAttemptHTTP2 = true
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
	return &http.Client{Transport: tr}
}
