package platform

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/files"
)

// Files of a rotation of the platform CA in the data directory, beside
// CACertFile and CAKeyFile (docs/auth.md, "Rotating the platform CA").
const (
	// CANextCertFile and CANextKeyFile are the announced CA: collectors
	// pin it from the platform's key set before any certificate of it is
	// served.
	CANextCertFile = CACertFile + ".next"
	CANextKeyFile  = CAKeyFile + ".next"
	// CAPreviousCertFile is the CA a switch replaced, still stated in the
	// key set (so collectors accept it) until the time in
	// CAPreviousUntilFile. Its key is not kept: nothing is issued from it.
	CAPreviousCertFile  = CACertFile + ".previous"
	CAPreviousUntilFile = CACertFile + ".previous-until"
)

// DefaultCAGrace is how long collectors accept the replaced CA after a
// switch: replicas that serve from their own copy of the data directory
// may serve the old CA's certificate until the operator has copied the new
// files to each.
const DefaultCAGrace = 24 * time.Hour

// caFiles are the files a CA rotation reads: a change to any of them is
// seen by the running platform (certs.checkCA).
var caFiles = []string{CACertFile, CAKeyFile, CANextCertFile, CAPreviousCertFile, CAPreviousUntilFile}

// caState is the CA files of the data directory, read (the certificates
// only: the keys stay where they are until a certificate is issued).
type caState struct {
	current, next, previous *x509.Certificate
	until                   time.Time
}

func readCAState(dir string) (*caState, error) {
	var st caState
	var err error
	if st.current, err = readCACert(filepath.Join(dir, CACertFile)); err != nil {
		return nil, err
	}
	if st.next, err = readOptionalCACert(filepath.Join(dir, CANextCertFile)); err != nil {
		return nil, err
	}
	if st.previous, err = readOptionalCACert(filepath.Join(dir, CAPreviousCertFile)); err != nil || st.previous == nil {
		return &st, err
	}
	if st.until, err = readGraceFile(filepath.Join(dir, CAPreviousUntilFile), CAPreviousCertFile); err != nil {
		return nil, err
	}
	return &st, nil
}

func readCACert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", path, err)
	}
	if !c.IsCA {
		return nil, fmt.Errorf("CA certificate %s: not a CA", path)
	}
	return c, nil
}

func readOptionalCACert(path string) (*x509.Certificate, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return readCACert(path)
}

// pins is the CA section of the platform's key set at now, and whether a
// rotation is under way (a CA announced, or a replaced one in its grace):
// only then does the platform hand the set out for the CA's sake.
func (st *caState) pins(now time.Time) (*crypto.CAPins, bool) {
	p := &crypto.CAPins{Current: api.CAPin(st.current)}
	if st.next != nil {
		p.Next = api.CAPin(st.next)
	}
	if st.previous != nil && now.Before(st.until) && api.CAPin(st.previous) != p.Current {
		until := st.until.UTC()
		p.Previous, p.PreviousUntil = api.CAPin(st.previous), &until
	}
	return p, p.Next != "" || p.Previous != ""
}

// CAStatus is where a rotation of the platform CA stands: the pins.
type CAStatus = RotationStatus

// CAKeyStatus reads the CA files of the data directory dir.
func CAKeyStatus(dir string) (CAStatus, error) {
	st, err := readCAState(dir)
	if err != nil {
		return CAStatus{}, err
	}
	s := CAStatus{Current: api.CAPin(st.current)}
	if st.next != nil {
		s.Next, s.AnnouncedAt = api.CAPin(st.next), announcedAt(filepath.Join(dir, CANextCertFile))
	}
	if st.previous != nil {
		until := st.until.UTC()
		s.Previous, s.PreviousUntil = api.CAPin(st.previous), &until
	}
	return s, nil
}

// AnnounceCA creates the next CA in the data directory dir: running
// replicas state its pin in the key set they hand out from now on
// (heartbeat and lease answers), and collectors pin it. It refuses while
// a CA is already announced or the previous rotation's grace lasts, and
// when the platform's CA is not its own (the data directory holds no CA
// key: --tls-cert names the operator's). It returns the new CA's pin.
func AnnounceCA(dir string, now time.Time) (string, error) {
	st, err := readCAState(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil {
		return "", fmt.Errorf("no CA key in %s (%v): the platform's CA is not its own, rotate the operator's certificate (--tls-cert) instead", dir, err)
	}
	switch {
	case st.next != nil:
		return "", fmt.Errorf("CA %s is already announced: switch to it (platform keys ca switch) before announcing another", api.CAPin(st.next))
	case st.previous != nil && now.Before(st.until):
		return "", fmt.Errorf("the previous CA rotation's grace lasts until %s (collectors still accept CA %s): announce after it",
			st.until.UTC().Format(time.RFC3339), api.CAPin(st.previous))
	}
	for _, name := range []string{CAPreviousCertFile, CAPreviousUntilFile, CANextCertFile, CANextKeyFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("remove the retired CA: %w", err)
		}
	}
	// The key first, the certificate last: the certificate's presence is
	// the announcement, and its key is there by then.
	if err := createCA(filepath.Join(dir, CANextCertFile), filepath.Join(dir, CANextKeyFile)); err != nil {
		return "", fmt.Errorf("create the next CA: %w", err)
	}
	next, err := readCACert(filepath.Join(dir, CANextCertFile))
	if err != nil {
		return "", err
	}
	return api.CAPin(next), nil
}

// ErrCAAnnouncedTooRecently: a switch asked before MinSigningAnnounce has
// passed since the CA was announced.
var ErrCAAnnouncedTooRecently = errors.New("the next CA was announced too recently")

// SwitchCA makes the announced CA current in the data directory dir: the
// running platform issues its server certificate from it and serves that;
// collectors accept the replaced CA until now + grace. Unless force, it
// refuses a CA announced less than MinSigningAnnounce ago (collectors pin
// it from their heartbeats, every 30 s by default). Each step is a rename,
// and a switch interrupted half way is finished by running it again.
func SwitchCA(dir string, grace time.Duration, force bool, now time.Time) (CAStatus, error) {
	st, err := readCAState(dir)
	if err != nil {
		return CAStatus{}, err
	}
	nextCert := filepath.Join(dir, CANextCertFile)
	if st.next == nil {
		return CAStatus{}, errors.New("no CA is announced: run `platform keys ca announce` first")
	}
	if err := readyToSwitch(nextCert, grace, force, now, ErrCAAnnouncedTooRecently, "their next heartbeat"); err != nil {
		return CAStatus{}, err
	}
	// The grace, then the old CA as previous, then the key and the
	// certificate of the new one: a platform reading between two steps
	// serves the CA whose certificate and key match, and states both.
	until := now.Add(grace).UTC().Format(time.RFC3339) + "\n"
	if err := files.WriteAtomic(filepath.Join(dir, CAPreviousUntilFile), []byte(until)); err != nil {
		return CAStatus{}, fmt.Errorf("write the CA grace: %w", err)
	}
	if st.previous == nil || !st.previous.Equal(st.current) {
		cur := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: st.current.Raw})
		if err := files.WriteAtomic(filepath.Join(dir, CAPreviousCertFile), cur); err != nil {
			return CAStatus{}, fmt.Errorf("keep the replaced CA: %w", err)
		}
	}
	if nextKey := filepath.Join(dir, CANextKeyFile); fileExists(nextKey) {
		if err := os.Rename(nextKey, filepath.Join(dir, CAKeyFile)); err != nil {
			return CAStatus{}, fmt.Errorf("make the next CA's key current: %w", err)
		}
	}
	if err := os.Rename(nextCert, filepath.Join(dir, CACertFile)); err != nil {
		return CAStatus{}, fmt.Errorf("make the next CA current: %w", err)
	}
	if err := os.Chmod(filepath.Join(dir, CACertFile), 0o644); err != nil {
		return CAStatus{}, err
	}
	return CAKeyStatus(dir)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
