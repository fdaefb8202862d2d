package config

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/files"
)

// Key files of a rotation (docs/auth.md §7), beside IdentityFile and
// HPKEFile: the keys being rotated to until the platform took them, and
// the keys rotated out, kept until the platform's grace ends.
const (
	NextSuffix     = ".next"
	PreviousSuffix = ".previous"
)

// KeyRing is the collector's private keys as they stand on disk now: a
// rotation replaces the key files under a running daemon and runner
// (separate containers sharing the config dir), which read them again
// whenever the files changed, without a restart.
type KeyRing struct {
	dir string

	mu       sync.Mutex
	stamp    string
	identity []ed25519.PrivateKey
	hpke     []*crypto.HPKEKey
}

// NewKeyRing returns the ring of dir, starting from k (as Load read it).
func NewKeyRing(dir string, k *Keys) *KeyRing {
	r := &KeyRing{dir: dir, identity: []ed25519.PrivateKey{k.Identity}, hpke: []*crypto.HPKEKey{k.HPKE}}
	r.reload()
	return r
}

// ringFiles are the files a ring reads: a change to any of them reloads
// it.
var ringFiles = []string{IdentityFile, HPKEFile, HPKEFile + NextSuffix, HPKEFile + PreviousSuffix, IdentityFile + NextSuffix}

// Identities are the identity keys to sign assertions with, in order: the
// current key, then the one a rotation in progress moves to (the platform
// may have taken it, and stopped accepting the current one, while the
// files wait to be switched).
func (r *KeyRing) Identities() []ed25519.PrivateKey {
	r.reload()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.identity
}

// HPKEKeys are the keys to try on a job envelope, in order: the current
// key, the one a rotation in progress moves to (the platform may seal to
// it before the files are switched), the one it replaced (a job leased
// before the switch).
func (r *KeyRing) HPKEKeys() []*crypto.HPKEKey {
	r.reload()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hpke
}

// reload reads the keys again if a file changed. A file that cannot be
// read or parsed leaves the keys as they were: the files are replaced by
// rename, so a half-written one is never seen, and the current key is
// better than none.
func (r *KeyRing) reload() {
	stamp := files.Stamp(r.dir, ringFiles...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if stamp == r.stamp {
		return
	}
	k, err := loadKeys(r.dir)
	if err != nil {
		return
	}
	hpke := []*crypto.HPKEKey{k.HPKE}
	for _, name := range []string{HPKEFile + NextSuffix, HPKEFile + PreviousSuffix} {
		if hk, err := ReadHPKEKey(filepath.Join(r.dir, name)); err == nil {
			hpke = append(hpke, hk)
		}
	}
	ids := []ed25519.PrivateKey{k.Identity}
	if id, err := ReadIdentityKey(filepath.Join(r.dir, IdentityFile+NextSuffix)); err == nil {
		ids = append(ids, id)
	}
	r.stamp, r.identity, r.hpke = stamp, ids, hpke
}

// ReadIdentityKey reads an identity key file.
func ReadIdentityKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := crypto.ParseEd25519PrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	return k, nil
}

// ReadHPKEKey reads an HPKE key file.
func ReadHPKEKey(path string) (*crypto.HPKEKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := crypto.ParseHPKEPrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("HPKE key %s: %w", path, err)
	}
	return k, nil
}
