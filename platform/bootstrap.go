package platform

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
)

// Files in the data directory.
const (
	AdminTokenFile = "admin-token"
	SigningKeyFile = "signing.key"
	DataKeyFile    = "data.key"
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"

	settingAdminTokenHash = "admin_token_hash"
)

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

// loadDataKey loads or creates the at-rest data key (32 raw bytes).
func loadDataKey(dir string, log *slog.Logger) ([]byte, error) {
	path := filepath.Join(dir, DataKeyFile)
	k, created, err := loadOrCreate(path, crypto.NewDataKey)
	if err != nil {
		return nil, fmt.Errorf("data key %s: %w", path, err)
	}
	if len(k) != crypto.DataKeySize {
		return nil, fmt.Errorf("data key %s: %d bytes, want %d", path, len(k), crypto.DataKeySize)
	}
	if created {
		log.Info("created at-rest data key", "path", path)
	}
	return k, nil
}

// ensureAdminToken creates the admin token on first start: the token goes to
// a 0600 file, only its hash to the store. It returns the hash.
func ensureAdminToken(ctx context.Context, st store.Store, dir string, log *slog.Logger) (string, error) {
	path := filepath.Join(dir, AdminTokenFile)
	h, err := st.Setting(ctx, settingAdminTokenHash)
	if err == nil {
		if _, err := os.Stat(path); err != nil {
			log.Warn("admin token file is missing; the admin token in use is the one created on first start", "path", path)
		}
		return h, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("read admin token hash: %w", err)
	}
	tok, err := crypto.NewToken(api.AdminTokenPrefix)
	if err != nil {
		return "", err
	}
	os.Remove(path) // a stale file from an older database
	if err := writeSecretFile(path, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	h = crypto.HashToken(tok)
	if err := st.PutSetting(ctx, settingAdminTokenHash, h); err != nil {
		return "", fmt.Errorf("store admin token hash: %w", err)
	}
	log.Info("created admin token; use it with --token or PLATFORM_TOKEN, or let the CLI read the file", "path", path)
	return h, nil
}
