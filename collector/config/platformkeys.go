package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/files"
)

// PlatformKeysFile holds, in the state dir, the platform key set the
// collector accepts since a rotation of the platform's envelope-signing
// key began (docs/auth.md §8); without it, the key pinned at enrollment
// (Config.PlatformSigningKey) alone. It is not a field of config.json: the
// config dir is mounted read-only into the daemon and runner, while the
// state dir is the runner's own; and an image rolled back to a version
// that knows nothing of it still reads its config.
const PlatformKeysFile = "platform-keys.json"

// PlatformKeysLock is the lock file of the pins' updates (see Apply).
const PlatformKeysLock = ".platform-keys.lock"

// lockFile takes an exclusive flock on path (created 0600), and returns
// its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// PlatformKeys is the platform's envelope-signing keys the collector
// accepts: the runner pins those a lease carries, under keys it already
// accepts, and reads the file again whenever it changed.
type PlatformKeys struct {
	dir         string
	enrolled    ed25519.PublicKey
	enrolledPin string
	now         atomic.Pointer[func() time.Time]

	mu    sync.Mutex
	stamp string
	set   *crypto.KeySet // nil: the enrolled key alone
}

// NewPlatformKeys returns the accepted keys kept in dir (the state dir),
// in the time now gives (the platform's, as the client measures it: the
// grace ends in its time; SetClock changes it), with enrolled the signing
// key and enrolledPin the CA pin enrollment pinned. A key file that does
// not parse is an error: accepting the enrolled key instead would undo a
// rotation.
func NewPlatformKeys(dir string, enrolled ed25519.PublicKey, enrolledPin string, now func() time.Time) (*PlatformKeys, error) {
	p := &PlatformKeys{dir: dir, enrolled: enrolled, enrolledPin: enrolledPin}
	p.SetClock(now)
	if err := p.load(); err != nil {
		return nil, err
	}
	return p, nil
}

// Accepted returns the keys an envelope may be signed with now, the one
// the platform signs with first.
func (p *PlatformKeys) Accepted() []ed25519.PublicKey {
	_ = p.load() // a file that went bad keeps the keys in use
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acceptedLocked()
}

func (p *PlatformKeys) acceptedLocked() []ed25519.PublicKey {
	if p.set == nil {
		return []ed25519.PublicKey{p.enrolled}
	}
	return p.set.Accepted((*p.now.Load())())
}

// SetClock sets the time the graces end in: the platform's, once the
// client that measures it exists (the TLS client needs the pins first).
func (p *PlatformKeys) SetClock(now func() time.Time) { p.now.Store(&now) }

// CAPins returns the platform CA pins the collector's TLS accepts now
// (docs/auth.md, "Rotating the platform CA"): those of the pinned key set
// once the platform stated its CA in one, the pin of enrollment before.
// It is read at each handshake, the daemon's and the runner's, whichever
// of them pinned the set.
func (p *PlatformKeys) CAPins() []string {
	_ = p.load() // a file that went bad keeps the pins in use
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil || p.set.CA == nil {
		return []string{p.enrolledPin}
	}
	return p.set.CA.Accepted((*p.now.Load())())
}

// Apply pins the key set s states if one of its signatures is by a key
// the collector accepts now, and it is newer than the set pinned (a
// replayed older statement changes nothing). It reports whether the
// accepted keys changed; the file is rewritten (atomically) only then.
//
// The daemon and the runner both pin, each in its own process: the read,
// the check and the write hold an exclusive lock on PlatformKeysLock, so
// that one never replaces a set the other pinned meanwhile by an older one.
func (p *PlatformKeys) Apply(s *crypto.SignedKeySet) (bool, error) {
	unlock, err := lockFile(filepath.Join(p.dir, PlatformKeysLock))
	if err != nil {
		return false, fmt.Errorf("pin the platform's keys: %w", err)
	}
	defer unlock()
	if err := p.load(); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ks, err := s.Verify(p.acceptedLocked())
	if err != nil {
		return false, err
	}
	if p.set != nil && (!ks.IssuedAt.After(p.set.IssuedAt) || sameKeys(ks, p.set)) {
		return false, nil
	}
	b, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return false, err
	}
	if err := WriteFile(filepath.Join(p.dir, PlatformKeysFile), append(b, '\n')); err != nil {
		return false, fmt.Errorf("pin the platform's keys: %w", err)
	}
	p.set, p.stamp = ks, files.Stamp(p.dir, PlatformKeysFile)
	return true, nil
}

// sameKeys says whether a and b state the same keys, pins and graces.
func sameKeys(a, b *crypto.KeySet) bool {
	caEq := (a.CA == nil) == (b.CA == nil) && (a.CA == nil ||
		a.CA.Current == b.CA.Current && a.CA.Next == b.CA.Next && a.CA.Previous == b.CA.Previous && sameTime(a.CA.PreviousUntil, b.CA.PreviousUntil))
	return bytes.Equal(a.Current, b.Current) && bytes.Equal(a.Next, b.Next) && bytes.Equal(a.Previous, b.Previous) &&
		sameTime(a.PreviousUntil, b.PreviousUntil) && caEq
}

func sameTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

// load reads the file again if it changed.
func (p *PlatformKeys) load() error {
	stamp := files.Stamp(p.dir, PlatformKeysFile)
	p.mu.Lock()
	defer p.mu.Unlock()
	if stamp == p.stamp {
		return nil
	}
	path := filepath.Join(p.dir, PlatformKeysFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		p.stamp, p.set = stamp, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the platform's keys: %w", err)
	}
	var ks crypto.KeySet
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ks); err != nil {
		return fmt.Errorf("platform keys %s: %w (remove it to accept the enrolled key alone, or re-enroll)", path, err)
	}
	if err := ks.Check(); err != nil {
		return fmt.Errorf("platform keys %s: %w", path, err)
	}
	p.stamp, p.set = stamp, &ks
	return nil
}

// ForgetPlatformKeys removes the pinned key set of dir (the state dir): an
// enrollment pins the platform's current key afresh, and a set from an
// earlier enrollment would override it.
func ForgetPlatformKeys(dir string) error {
	if err := os.Remove(filepath.Join(dir, PlatformKeysFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget the platform keys of an earlier enrollment: %w", err)
	}
	return nil
}
