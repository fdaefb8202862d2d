package api

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/collectorhq/collector/crypto"
)

// PathCollectorKeys is where a collector reads (GET) and rotates (POST)
// its public keys, with its access token (docs/auth.md §7).
const PathCollectorKeys = "/api/v1/collector/keys"

// KeyRotationSkew is how far a rotation's issued_at may be from the
// platform's time: the collector signs in platform time (PlatformClock),
// so this only absorbs the request's own delays.
const KeyRotationSkew = 5 * time.Minute

// RotateKeysRequest replaces a collector's identity and HPKE keys. The
// identity key it replaces signs it (the collector's consent, bound to
// that exact key: once replaced, the same request is refused), and so
// does the new one (proof that the collector holds it).
type RotateKeysRequest struct {
	IdentityPublicKey []byte `json:"identity_public_key"` // base64 (std), 32-byte Ed25519
	HPKEPublicKey     []byte `json:"hpke_public_key"`     // base64 (std), MLKEM768X25519
	// IssuedAt is the Unix second, in platform time, the request was signed.
	IssuedAt int64 `json:"issued_at"`
	// OldKeySignature and NewKeySignature are Ed25519 signatures of
	// KeyRotationMessage by the current and the new identity key.
	OldKeySignature []byte `json:"old_key_signature"`
	NewKeySignature []byte `json:"new_key_signature"`
}

// CollectorKeys is what the platform holds of a collector's keys: a
// collector that crashed in the middle of a rotation reads it to learn
// which of its keys the platform took.
type CollectorKeys struct {
	IdentityKeyFingerprint string `json:"identity_key_fingerprint"`
	HPKEKeyFingerprint     string `json:"hpke_key_fingerprint"`
	// PreviousIdentityKeyFingerprint is the identity key the last rotation
	// replaced, still accepted until PreviousKeyValidUntil.
	PreviousIdentityKeyFingerprint string     `json:"previous_identity_key_fingerprint,omitempty"`
	PreviousKeyValidUntil          *time.Time `json:"previous_key_valid_until,omitempty"`
}

// ErrRotationNotCurrent refuses a key rotation the collector's current
// identity key did not sign: most often one the platform already took
// (the same request again), or one made with the key a rotation replaced.
var ErrRotationNotCurrent = errors.New("key rotation not signed by the collector's current identity key")

// keyRotationDomain separates these signatures from every other use of
// the identity key (assertions sign a JWT, which cannot start with it).
const keyRotationDomain = "collector key rotation v1"

// KeyRotationMessage is what both identity keys sign: the domain, the
// collector, the platform (audience), the key being replaced, the new
// keys and the time, each length-prefixed.
func KeyRotationMessage(collectorID, audience string, oldIdentity, newIdentity, newHPKE []byte, issuedAt int64) []byte {
	var b []byte
	for _, f := range [][]byte{[]byte(keyRotationDomain), []byte(collectorID), []byte(audience), oldIdentity, newIdentity, newHPKE} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	return binary.BigEndian.AppendUint64(b, uint64(issuedAt))
}

// SignKeyRotation builds the request that replaces old with next.
func SignKeyRotation(collectorID, audience string, old, next ed25519.PrivateKey, nextHPKE []byte, issuedAt time.Time) RotateKeysRequest {
	newPub := next.Public().(ed25519.PublicKey)
	msg := KeyRotationMessage(collectorID, audience, old.Public().(ed25519.PublicKey), newPub, nextHPKE, issuedAt.Unix())
	return RotateKeysRequest{IdentityPublicKey: newPub, HPKEPublicKey: nextHPKE, IssuedAt: issuedAt.Unix(),
		OldKeySignature: ed25519.Sign(old, msg), NewKeySignature: ed25519.Sign(next, msg)}
}

// Validate checks the request's form; Verify checks its signatures.
func (r RotateKeysRequest) Validate() error {
	switch {
	case len(r.IdentityPublicKey) != ed25519.PublicKeySize:
		return invalidf("identity_public_key must be a base64 Ed25519 public key (%d bytes), got %d bytes",
			ed25519.PublicKeySize, len(r.IdentityPublicKey))
	case len(r.OldKeySignature) != ed25519.SignatureSize || len(r.NewKeySignature) != ed25519.SignatureSize:
		return invalidf("old_key_signature and new_key_signature must be base64 Ed25519 signatures (%d bytes)", ed25519.SignatureSize)
	case r.IssuedAt <= 0:
		return invalidf("issued_at is required (Unix seconds)")
	}
	if err := crypto.ValidateHPKEPublicKey(r.HPKEPublicKey); err != nil {
		return invalidf("hpke_public_key: %v", err)
	}
	return nil
}

// Verify checks that old (the collector's current identity key) and the
// new identity key both signed the request, for this collector and
// platform, within KeyRotationSkew of now.
func (r RotateKeysRequest) Verify(collectorID, audience string, old ed25519.PublicKey, now time.Time) error {
	if d := now.Sub(time.Unix(r.IssuedAt, 0)); d > KeyRotationSkew || d < -KeyRotationSkew {
		return fmt.Errorf("key rotation issued at %s, %s from the platform's time: %w", time.Unix(r.IssuedAt, 0).UTC().Format(time.RFC3339), d.Round(time.Second), ErrInvalid)
	}
	msg := KeyRotationMessage(collectorID, audience, old, r.IdentityPublicKey, r.HPKEPublicKey, r.IssuedAt)
	if !ed25519.Verify(old, msg, r.OldKeySignature) {
		return ErrRotationNotCurrent
	}
	if !ed25519.Verify(ed25519.PublicKey(r.IdentityPublicKey), msg, r.NewKeySignature) {
		return fmt.Errorf("key rotation: no proof of possession of the new identity key: %w", ErrInvalid)
	}
	return nil
}

// RotateKeys sends a signed rotation; the platform answers with the keys
// it now holds.
func (c *CollectorClient) RotateKeys(ctx context.Context, req RotateKeysRequest) (*CollectorKeys, error) {
	var out CollectorKeys
	if err := c.Do(ctx, http.MethodPost, PathCollectorKeys, req, &out); err != nil {
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	return &out, nil
}

// Keys reads the keys the platform holds for the collector.
func (c *CollectorClient) Keys(ctx context.Context) (*CollectorKeys, error) {
	var out CollectorKeys
	if err := c.Do(ctx, http.MethodGet, PathCollectorKeys, nil, &out); err != nil {
		return nil, fmt.Errorf("read the platform's keys of this collector: %w", err)
	}
	return &out, nil
}
