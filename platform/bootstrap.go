package platform

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/collectorhq/collector/crypto"
)

// Files in the data directory.
const (
	SigningKeyFile = "signing.key"
	DataKeyFile    = "data.key"
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	// MetricsTokenFile holds the bearer token /metrics asks for.
	MetricsTokenFile = "metrics-token"
	// AuditCheckpointFile holds the audit chain's newest seq and hash,
	// kept outside the database: a chain that loses its newest entries no
	// longer matches it.
	AuditCheckpointFile = "audit-checkpoint"
	// integrityMarkerFile records that the database's rows carry integrity
	// MACs: from then on, rows without one are refused, never adopted.
	integrityMarkerFile = "integrity-adopted"

	settingMetricsTokenHash = "metrics_token_hash"
)

// DataDir is the platform's data directory, prepared: its keys and TLS
// material (created on first start). Its keys never go into the database:
// the database alone is not a trust root.
type DataDir struct {
	Path       string
	SigningKey ed25519.PrivateKey
	// Signing is the envelope-signing key ring (SigningKey is its current
	// key at start): a rotation changes it under the running platform.
	Signing *SigningRing
	// Keys is the at-rest key ring, the current key first: it seals
	// new secrets, every key opens (a rotation in progress, docs/auth.md).
	Keys *crypto.KeyRing
	// DataKey is the ring's current key.
	DataKey []byte
	// IntegrityKey keys the MACs of the database's trust-bearing rows. It
	// is derived from DataKey, so one file holds both.
	IntegrityKey []byte
	// PreviousIntegrityKeys are derived from the ring's other keys: MACs
	// under them still verify, new ones are never written with them.
	PreviousIntegrityKeys [][]byte
	Cert                  tls.Certificate
	CAPin                 string
	log                   *slog.Logger
}

// OpenDataDir creates or loads the data directory's keys and certificate.
func OpenDataDir(cfg Config, log *slog.Logger) (*DataDir, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &DataDir{Path: cfg.DataDir, log: log}
	if err := ensureDataDir(d.Path); err != nil {
		return nil, err
	}
	var err error
	if d.Signing, err = openSigningRing(d.Path, log); err != nil {
		return nil, err
	}
	d.SigningKey = d.Signing.Current()
	if err := d.loadKeys(cfg.DataKeyFile); err != nil {
		return nil, err
	}
	if d.Cert, d.CAPin, err = loadTLS(cfg, certHosts(cfg), log); err != nil {
		return nil, err
	}
	return d, nil
}

// IntegrityAdopted reports whether the database was marked as carrying
// integrity MACs on every trust-bearing row.
func (d *DataDir) IntegrityAdopted() bool {
	_, err := os.Stat(filepath.Join(d.Path, integrityMarkerFile))
	return err == nil
}

func (d *DataDir) markIntegrityAdopted() error {
	path := filepath.Join(d.Path, integrityMarkerFile)
	if d.IntegrityAdopted() {
		return nil
	}
	return writeSecretFile(path, []byte("1\n"))
}

// ensureDataDir creates the data directory 0700, or tightens it.
func ensureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	return nil
}

// writeSecretFile writes b to path 0600, refusing to replace an existing file.
func writeSecretFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// readSecretFile reads a key file that only its owner may read or write.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o: others may read or write it; chmod 600 it", fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// loadOrCreate returns the file's bytes, creating it with create() first if
// it does not exist.
func loadOrCreate(path string, create func() ([]byte, error)) (b []byte, created bool, err error) {
	b, err = os.ReadFile(path)
	if err == nil {
		return b, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if b, err = create(); err != nil {
		return nil, false, err
	}
	if err := writeSecretFile(path, b); err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// loadSigningKey loads or creates the platform's Ed25519 job-signing key.
func loadSigningKey(dir string, log *slog.Logger) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, SigningKeyFile)
	b, created, err := loadOrCreate(path, func() ([]byte, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return crypto.MarshalEd25519PrivateKeyPEM(k), nil
	})
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	k, err := crypto.ParseEd25519PrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	if created {
		log.Info("created platform signing key", "path", path, "public_key", crypto.Fingerprint(k.Public().(ed25519.PublicKey)))
	}
	return k, nil
}

// loadKeys loads (or, in the data directory, creates) the key ring and
// derives the integrity keys from it.
func (d *DataDir) loadKeys(file string) error {
	keys, err := loadDataKeys(d.Path, file, d.log)
	if err != nil {
		return err
	}
	if d.Keys, err = crypto.NewKeyRing(keys...); err != nil {
		return fmt.Errorf("data key file: %w", err)
	}
	d.DataKey = d.Keys.Current()
	for i, k := range keys {
		ik, err := integrityKey(k)
		if err != nil {
			return err
		}
		if i == 0 {
			d.IntegrityKey = ik
		} else {
			d.PreviousIntegrityKeys = append(d.PreviousIntegrityKeys, ik)
		}
	}
	return nil
}

// integrityKey derives the integrity key of a data key.
func integrityKey(dataKey []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, dataKey, nil, "collector platform integrity v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive integrity key: %w", err)
	}
	return k, nil
}

// loadDataKeys loads the data keys, the current first, from file if given
// (never created: see Config.DataKeyFile), else from the data directory's
// data.key, created with one new key on first start. The format is
// crypto.ParseDataKeyFile's.
func loadDataKeys(dir, file string, log *slog.Logger) ([][]byte, error) {
	path := filepath.Join(dir, DataKeyFile)
	var b []byte
	var created bool
	var err error
	if file != "" {
		path = file
		if b, err = readSecretFile(file); err != nil {
			return nil, fmt.Errorf("data key file %s: %w (create it once, for every replica: platform keys add --data-key-file FILE)", file, err)
		}
	} else if b, created, err = loadOrCreate(path, newDataKeyFile); err != nil {
		return nil, fmt.Errorf("data key %s: %w", path, err)
	}
	keys, err := crypto.ParseDataKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("data key file %s: %w", path, err)
	}
	if created {
		log.Info("created at-rest data key", "path", path, "key", crypto.DataKeyID(keys[0]))
	}
	return keys, nil
}

func newDataKeyFile() ([]byte, error) {
	k, err := crypto.NewDataKey()
	if err != nil {
		return nil, err
	}
	return crypto.FormatDataKeyFile([][]byte{k}), nil
}
