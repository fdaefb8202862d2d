package crypto

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// KeySetVersion is the version of the platform key set statement
// (docs/auth.md, "Rotating the platform's signing key").
const KeySetVersion = 1

// Bounds of a signed key set: SignedKeySet.Verify refuses anything larger
// before it verifies a signature.
const (
	maxKeySetStatement  = 1024
	maxKeySetSignatures = 4
)

// keySetDomain starts every message a key set signature covers, so that
// no envelope, assertion or other signature by the same key can pass for
// a key set, nor a key set for one of them.
const keySetDomain = "collector-platform-keys-v1\x00"

// ErrKeySetRefused is every refusal of a signed key set: malformed, of
// another version, signed by no key the collector accepts, or with a bad
// signature.
var ErrKeySetRefused = errors.New("platform key set refused")

// KeySet is the platform's statement of its envelope-signing keys: the
// one it signs with, the one it will switch to (announced first, so
// collectors pin it before any envelope is signed with it), and the one it
// replaced, accepted until PreviousUntil (the grace for jobs sealed before
// the switch).
type KeySet struct {
	V        int       `json:"v"`
	IssuedAt time.Time `json:"issued_at"`
	Current  []byte    `json:"current"`
	Next     []byte    `json:"next,omitempty"`
	Previous []byte    `json:"previous,omitempty"`
	// PreviousUntil is when Previous stops being accepted; set with it.
	PreviousUntil *time.Time `json:"previous_until,omitempty"`
	// CA is the platform's TLS CA pins (docs/auth.md, "Rotating the
	// platform CA"): stated in every statement once the platform's CA
	// was ever rotated, absent before (the pin of enrollment holds).
	CA *CAPins `json:"ca,omitempty"`
}

// CAPins is the platform CA pins a collector accepts on TLS: the CA the
// platform's certificate comes from, the one announced to replace it, and
// the one it replaced, accepted until PreviousUntil. Each is a CAPin of
// package api: "sha256:" and 64 hex digits.
type CAPins struct {
	Current       string     `json:"current"`
	Next          string     `json:"next,omitempty"`
	Previous      string     `json:"previous,omitempty"`
	PreviousUntil *time.Time `json:"previous_until,omitempty"`
}

// Accepted returns the CA pins accepted at now: current, then next, then
// previous while its grace lasts.
func (c *CAPins) Accepted(now time.Time) []string {
	pins := []string{c.Current}
	if c.Next != "" {
		pins = append(pins, c.Next)
	}
	if c.Previous != "" && c.PreviousUntil != nil && now.Before(*c.PreviousUntil) {
		pins = append(pins, c.Previous)
	}
	return pins
}

// Check says whether the pins are well formed.
func (c *CAPins) Check() error {
	for _, p := range []struct {
		name, pin string
		optional  bool
	}{{"current", c.Current, false}, {"next", c.Next, true}, {"previous", c.Previous, true}} {
		if p.pin == "" && p.optional {
			continue
		}
		if !wellFormedPin(p.pin) {
			return fmt.Errorf("%s CA pin %q: want sha256:<64 hex digits>", p.name, p.pin)
		}
	}
	if (c.Previous != "") != (c.PreviousUntil != nil) {
		return errors.New("previous CA pin and its previous_until go together")
	}
	return nil
}

func wellFormedPin(pin string) bool {
	h, ok := strings.CutPrefix(pin, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// Accepted returns the keys an envelope may be signed with at now: the
// current key first, then the announced one, then the previous one while
// its grace lasts.
func (k *KeySet) Accepted(now time.Time) []ed25519.PublicKey {
	keys := []ed25519.PublicKey{k.Current}
	if len(k.Next) != 0 {
		keys = append(keys, k.Next)
	}
	if len(k.Previous) != 0 && k.PreviousUntil != nil && now.Before(*k.PreviousUntil) {
		keys = append(keys, k.Previous)
	}
	return keys
}

// Check says whether the statement is well formed: its version, every key
// 32 bytes, and a grace end with (and only with) a previous key.
func (k *KeySet) Check() error {
	switch {
	case k.V != KeySetVersion:
		return fmt.Errorf("version %d, this collector reads %d", k.V, KeySetVersion)
	case k.IssuedAt.IsZero():
		return errors.New("no issued_at")
	case len(k.Current) != ed25519.PublicKeySize:
		return fmt.Errorf("current key is %d bytes", len(k.Current))
	case len(k.Next) != 0 && len(k.Next) != ed25519.PublicKeySize:
		return fmt.Errorf("next key is %d bytes", len(k.Next))
	case len(k.Previous) != 0 && len(k.Previous) != ed25519.PublicKeySize:
		return fmt.Errorf("previous key is %d bytes", len(k.Previous))
	case (len(k.Previous) != 0) != (k.PreviousUntil != nil):
		return errors.New("previous key and previous_until go together")
	case k.CA != nil:
		return k.CA.Check()
	}
	return nil
}

// KeySetSignature is one signature over a key set statement, with the
// public key that made it (which selects it, never trusts it).
type KeySetSignature struct {
	Key []byte `json:"key"`
	Sig []byte `json:"sig"`
}

// SignedKeySet is a key set statement as it crosses the wire: its exact
// JSON bytes, and a signature by each key the platform holds that a
// collector may still pin.
type SignedKeySet struct {
	Statement  []byte            `json:"statement"`
	Signatures []KeySetSignature `json:"signatures"`
}

// SignKeySet encodes ks and signs it with each of keys.
func SignKeySet(ks *KeySet, keys ...ed25519.PrivateKey) (*SignedKeySet, error) {
	if err := ks.Check(); err != nil {
		return nil, fmt.Errorf("sign key set: %w", err)
	}
	b, err := json.Marshal(ks)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 || len(keys) > maxKeySetSignatures || len(b) > maxKeySetStatement {
		return nil, fmt.Errorf("sign key set: %d keys, %d bytes: out of bounds", len(keys), len(b))
	}
	s := &SignedKeySet{Statement: b}
	for _, k := range keys {
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("sign key set: %w: ed25519 private key is %d bytes", ErrInvalidKey, len(k))
		}
		s.Signatures = append(s.Signatures, KeySetSignature{Key: k.Public().(ed25519.PublicKey), Sig: ed25519.Sign(k, keySetMessage(b))})
	}
	return s, nil
}

func keySetMessage(statement []byte) []byte {
	return append([]byte(keySetDomain), statement...)
}

// Verify returns the statement if one of its signatures is by a key of
// trusted and verifies. Only then is the statement decoded: an unsigned
// or wrongly signed one is never parsed beyond its bounds.
func (s *SignedKeySet) Verify(trusted []ed25519.PublicKey) (*KeySet, error) {
	if len(s.Statement) == 0 || len(s.Statement) > maxKeySetStatement || len(s.Signatures) > maxKeySetSignatures {
		return nil, fmt.Errorf("%w: %d bytes, %d signatures: out of bounds", ErrKeySetRefused, len(s.Statement), len(s.Signatures))
	}
	if !s.signedByOneOf(trusted) {
		return nil, fmt.Errorf("%w: not signed by a pinned platform key", ErrKeySetRefused)
	}
	var ks KeySet
	if err := decodeStrict(s.Statement, &ks); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeySetRefused, err)
	}
	if err := ks.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeySetRefused, err)
	}
	return &ks, nil
}

func (s *SignedKeySet) signedByOneOf(trusted []ed25519.PublicKey) bool {
	msg := keySetMessage(s.Statement)
	for _, sig := range s.Signatures {
		for _, k := range trusted {
			if len(k) == ed25519.PublicKeySize && k.Equal(ed25519.PublicKey(sig.Key)) && ed25519.Verify(k, msg, sig.Sig) {
				return true
			}
		}
	}
	return false
}
