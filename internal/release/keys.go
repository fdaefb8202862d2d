package release

import (
	"errors"
	"fmt"
	"os"

	"github.com/collectorhq/collector/internal/env"

	"github.com/sigstore/cosign/v2/pkg/cosign"
)

// PasswordEnv is the environment variable holding the private key's
// password, as cosign names it.
const PasswordEnv = env.CosignPassword

// KeyPair is a cosign key pair: an encrypted PEM private key (ECDSA P-256)
// and its PEM public key.
type KeyPair struct {
	Private []byte
	Public  []byte
}

// GenerateKeyPair makes a new key pair whose private key is encrypted with
// password (scrypt + secretbox, as `cosign generate-key-pair` does).
func GenerateKeyPair(password []byte) (*KeyPair, error) {
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, fmt.Errorf("generate key pair: %w", err)
	}
	return &KeyPair{Private: kb.PrivateBytes, Public: kb.PublicBytes}, nil
}

// WriteKeyPair generates a key pair and writes PREFIX.key (0600) and
// PREFIX.pub (0644). It refuses to overwrite an existing file.
func WriteKeyPair(prefix string, password []byte) (privPath, pubPath string, err error) {
	kp, err := GenerateKeyPair(password)
	if err != nil {
		return "", "", err
	}
	privPath, pubPath = prefix+".key", prefix+".pub"
	if err := writeNew(privPath, kp.Private, 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(pubPath, kp.Public, 0o644); err != nil {
		os.Remove(privPath)
		return "", "", err
	}
	return privPath, pubPath, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("write %s: %w: remove it first or choose another --output-key-prefix", path, err)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
