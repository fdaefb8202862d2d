// Package rotation replaces the collector's identity and HPKE keys without
// re-enrolling and without stopping a job (docs/auth.md §7), on demand:
// `collector keys rotate`, run as root on the host (the daemon and runner
// mount the config dir read-only and may never write it).
//
// The steps, each safe to crash after:
//
//  1. new keys are written beside the current ones (identity.key.next,
//     hpke.key.next);
//  2. the platform is sent the new public keys, signed by the current
//     identity key and by the new one;
//  3. once it took them, each current key file is copied to .previous and
//     the .next file renamed over it.
//
// A rotation found unfinished (a .next file left) is finished or rolled
// back by asking the platform which keys it holds (Resolve; the next
// Rotate does it first). Meanwhile the daemon and runner, which read the
// files again when they change (config.KeyRing), sign with the current
// identity key and then the next one, and open an envelope with the
// current, next or previous HPKE key: neither a crash nor a lost answer
// locks the collector out.
package rotation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/crypto"
)

// Platform is the part of the collector API a rotation uses.
type Platform interface {
	RotateKeys(ctx context.Context, req api.RotateKeysRequest) (*api.CollectorKeys, error)
	Keys(ctx context.Context) (*api.CollectorKeys, error)
}

// lockFile serializes rotations: two operators' `collector keys rotate`
// may start together.
const lockFile = ".keys.lock"

// Rotator rotates the keys of the collector whose config dir is Dir.
type Rotator struct {
	Dir         string
	CollectorID string
	Audience    string
	// Client returns the platform client that signs its assertions with
	// key: the current key, or, to finish a rotation after the platform's
	// grace for the old key ended, the new one.
	Client func(key ed25519.PrivateKey) Platform
	// Now is the platform's time (api.PlatformClock), in which the
	// request is signed.
	Now func() time.Time
	Log *slog.Logger
}

// Result is the keys a rotation left.
type Result struct {
	IdentityKeyFingerprint string    `json:"identity_key_fingerprint"`
	HPKEKeyFingerprint     string    `json:"hpke_key_fingerprint"`
	PreviousValidUntil     time.Time `json:"previous_valid_until"`
	// Finished is true when the call finished an earlier, interrupted
	// rotation instead of making a new one.
	Finished bool `json:"finished,omitempty"`
}

// ErrKeysDiverged: the platform holds keys this collector has neither as
// its current nor as its next keys.
var ErrKeysDiverged = errors.New("the platform holds other keys for this collector than the ones in its config dir")

// Rotate makes new keys and has the platform take them. A rotation left
// unfinished earlier is resolved first; if it turns out the platform had
// taken its keys, that rotation is the result.
func (r *Rotator) Rotate(ctx context.Context) (*Result, error) {
	unlock, err := r.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if res, err := r.resolve(ctx); err != nil || res != nil {
		return res, err
	}
	cur, err := r.current()
	if err != nil {
		return nil, err
	}
	next, err := config.NewKeys()
	if err != nil {
		return nil, fmt.Errorf("generate new keys: %w", err)
	}
	if err := r.writeNext(next); err != nil {
		return nil, err
	}
	req := api.SignKeyRotation(r.CollectorID, r.Audience, cur.Identity, next.Identity, next.HPKE.PublicKey(), r.Now())
	got, err := r.Client(cur.Identity).RotateKeys(ctx, req)
	if err != nil {
		// The platform may have taken the keys all the same (an answer
		// lost, then a retry refused as stale): ask it which it holds.
		res, rerr := r.resolve(ctx)
		if rerr != nil {
			return nil, fmt.Errorf("rotate keys: %w; and the platform could not say which keys it holds (%v): the new keys wait beside the current ones, and the next `collector keys rotate` finishes or rolls back", err, rerr)
		}
		if res != nil {
			res.Finished = false // this rotation, not an earlier one
			return res, nil
		}
		return nil, fmt.Errorf("the platform refused the new keys; the current keys stay: %w", err)
	}
	if got.IdentityKeyFingerprint != fingerprint(next.Identity) || got.HPKEKeyFingerprint != crypto.Fingerprint(next.HPKE.PublicKey()) {
		return nil, fmt.Errorf("the platform answered with keys %s, not the new ones: %w", got.IdentityKeyFingerprint, ErrKeysDiverged)
	}
	return r.commit(got)
}

// Resolve finishes or rolls back a rotation left unfinished (a crash, a
// lost answer); it reports the finished rotation, or nil when there was
// none to finish.
func (r *Rotator) Resolve(ctx context.Context) (*Result, error) {
	unlock, err := r.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return r.resolve(ctx)
}

func (r *Rotator) resolve(ctx context.Context) (*Result, error) {
	nextID, errID := config.ReadIdentityKey(r.path(config.IdentityFile + config.NextSuffix))
	nextHPKE, errHPKE := config.ReadHPKEKey(r.path(config.HPKEFile + config.NextSuffix))
	if errors.Is(errID, os.ErrNotExist) && errors.Is(errHPKE, os.ErrNotExist) {
		return nil, nil
	}
	cur, err := r.current()
	if err != nil {
		return nil, err
	}
	// The keys the rotation moves to: each .next file, or the current
	// file when a crash came after that one was switched.
	want := &config.Keys{Identity: cur.Identity, HPKE: cur.HPKE}
	if errID == nil {
		want.Identity = nextID
	} else if !errors.Is(errID, os.ErrNotExist) {
		return nil, errID
	}
	if errHPKE == nil {
		want.HPKE = nextHPKE
	} else if !errors.Is(errHPKE, os.ErrNotExist) {
		return nil, errHPKE
	}
	got, err := r.Client(cur.Identity).Keys(ctx)
	if api.StatusOf(err) == http.StatusUnauthorized && errID == nil {
		// The grace of the old key ended while the rotation waited.
		got, err = r.Client(nextID).Keys(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("finish the interrupted key rotation: %w", err)
	}
	switch {
	case got.IdentityKeyFingerprint == fingerprint(want.Identity) && got.HPKEKeyFingerprint == crypto.Fingerprint(want.HPKE.PublicKey()):
		r.Log.Info("finishing an interrupted key rotation: the platform holds the new keys", "identity_key", got.IdentityKeyFingerprint)
		res, err := r.commit(got)
		if res != nil {
			res.Finished = true
		}
		return res, err
	case got.IdentityKeyFingerprint == fingerprint(cur.Identity) && got.HPKEKeyFingerprint == crypto.Fingerprint(cur.HPKE.PublicKey()):
		r.Log.Info("rolling back an interrupted key rotation: the platform never took the new keys", "identity_key", got.IdentityKeyFingerprint)
		r.discardNext()
		return nil, nil
	}
	return nil, fmt.Errorf("the platform holds identity key %s, this collector has %s (next %s): %w; re-enroll it (a new enrollment token, then the installer)",
		got.IdentityKeyFingerprint, fingerprint(cur.Identity), fingerprint(want.Identity), ErrKeysDiverged)
}

// commit switches the files to the keys the platform took. Each kind is
// copied to .previous, then its .next renamed over it: a crash between
// two steps leaves a state resolve finishes. The .previous files stay
// until the next rotation replaces them: a job leased before the switch
// may still need the old HPKE key.
func (r *Rotator) commit(got *api.CollectorKeys) (*Result, error) {
	for _, name := range []string{config.IdentityFile, config.HPKEFile} {
		next := r.path(name + config.NextSuffix)
		if _, err := os.Stat(next); errors.Is(err, os.ErrNotExist) {
			continue // switched before a crash
		}
		cur, err := os.ReadFile(r.path(name))
		if err != nil {
			return nil, fmt.Errorf("keep the old key: %w", err)
		}
		if err := config.WriteFile(r.path(name+config.PreviousSuffix), cur); err != nil {
			return nil, fmt.Errorf("keep the old key: %w", err)
		}
		if err := os.Rename(next, r.path(name)); err != nil {
			return nil, fmt.Errorf("switch to the new key: %w", err)
		}
	}
	var until time.Time
	if got.PreviousKeyValidUntil != nil {
		until = got.PreviousKeyValidUntil.UTC()
	}
	r.Log.Info("collector keys rotated", "identity_key", got.IdentityKeyFingerprint, "hpke_key", got.HPKEKeyFingerprint,
		"old_key_valid_until", until)
	return &Result{IdentityKeyFingerprint: got.IdentityKeyFingerprint, HPKEKeyFingerprint: got.HPKEKeyFingerprint,
		PreviousValidUntil: until}, nil
}

func (r *Rotator) current() (*config.Keys, error) {
	id, err := config.ReadIdentityKey(r.path(config.IdentityFile))
	if err != nil {
		return nil, fmt.Errorf("read the identity key: %w", err)
	}
	hk, err := config.ReadHPKEKey(r.path(config.HPKEFile))
	if err != nil {
		return nil, fmt.Errorf("read the HPKE key: %w", err)
	}
	return &config.Keys{Identity: id, HPKE: hk}, nil
}

// writeNext writes the new keys beside the current ones; the HPKE key
// first, so that the runner can open what the platform seals to it as
// soon as the platform has it.
func (r *Rotator) writeNext(k *config.Keys) error {
	if err := config.WriteFile(r.path(config.HPKEFile+config.NextSuffix), crypto.MarshalHPKEPrivateKeyPEM(k.HPKE)); err != nil {
		return fmt.Errorf("write the new HPKE key: %w", err)
	}
	if err := config.WriteFile(r.path(config.IdentityFile+config.NextSuffix), crypto.MarshalEd25519PrivateKeyPEM(k.Identity)); err != nil {
		return fmt.Errorf("write the new identity key: %w", err)
	}
	return nil
}

func (r *Rotator) discardNext() {
	for _, name := range []string{config.IdentityFile, config.HPKEFile} {
		if err := os.Remove(r.path(name + config.NextSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.Log.Warn("remove the refused new key", "file", name+config.NextSuffix, "err", err)
		}
	}
}

func (r *Rotator) lock() (func(), error) {
	f, err := os.OpenFile(r.path(lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the key files: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the key files: %w", err)
	}
	return func() { f.Close() }, nil
}

func (r *Rotator) path(name string) string { return filepath.Join(r.Dir, name) }

func fingerprint(k ed25519.PrivateKey) string {
	return crypto.Fingerprint(k.Public().(ed25519.PublicKey))
}
