package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// DataKeySize is the size of a data key, in bytes.
const DataKeySize = 32

// Version bytes of a sealed value. A new scheme gets a new byte, so old
// rows stay readable.
const (
	// atRestV1: AES-256-GCM, 12-byte random nonce, no key ID. Written
	// before key rings; opened by trying each key of the ring.
	atRestV1 = 0x01
	// atRestV2: v1 with the 4-byte ID of the key it is sealed under after
	// the version byte, so that opening picks the key without trial and a
	// value under a key no longer in the ring says which key it needs.
	atRestV2 = 0x02
)

// keyIDSize is the size of a data key's ID in a v2 sealed value.
const keyIDSize = 4

// ErrAtRestDecrypt is returned by KeyRing.Open and OpenAtRest for a value
// that does not open:
// wrong key, wrong aad, unknown version byte, truncated or tampered.
var ErrAtRestDecrypt = errors.New("at-rest decryption failed")

// ErrDataKeyNotInRing is returned (with ErrAtRestDecrypt) for a value
// sealed under a data key that is not in the key ring: a key removed from
// the key file before `platform keys rotate` re-sealed everything under
// the newer one.
var ErrDataKeyNotInRing = errors.New("sealed under a data key that is not in the key ring")

// ErrAtRestKey reports a data key of the wrong size.
var ErrAtRestKey = errors.New("at-rest data key must be 32 bytes")

// NewDataKey returns a new random 256-bit data key.
func NewDataKey() ([]byte, error) {
	key := make([]byte, DataKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("new data key: %w", err)
	}
	return key, nil
}

// DataKeyID returns the short public ID of a data key (8 hex digits): what
// a sealed value records, and what `platform keys status` shows. It is a
// truncated hash of the key, which reveals nothing of a random 256-bit key.
func DataKeyID(key []byte) string {
	id := dataKeyID(key)
	return hex.EncodeToString(id[:])
}

func dataKeyID(key []byte) [keyIDSize]byte {
	h := sha256.Sum256(append([]byte("collector data key id v1\x00"), key...))
	return [keyIDSize]byte(h[:keyIDSize])
}

// KeyRing is the platform's at-rest data keys: the first (current) seals,
// every key opens. During a rotation it holds the new key and the old one,
// so values sealed under either stay readable until everything is
// re-sealed under the new key.
type KeyRing struct {
	keys []ringKey
}

type ringKey struct {
	id   [keyIDSize]byte
	key  []byte
	aead cipher.AEAD
}

// NewKeyRing returns a ring of keys, the current first. It refuses an
// empty ring, a key of the wrong size and two keys with the same ID (the
// same key twice, or, once in four billion, two keys whose IDs collide:
// generate another).
func NewKeyRing(keys ...[]byte) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("key ring: no data key")
	}
	r := &KeyRing{}
	seen := map[[keyIDSize]byte]int{}
	for i, k := range keys {
		aead, err := atRestAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("key ring: key %d: %w", i+1, err)
		}
		id := dataKeyID(k)
		if j, ok := seen[id]; ok {
			return nil, fmt.Errorf("key ring: keys %d and %d have the same ID %x (the same key twice?)", j+1, i+1, id)
		}
		seen[id] = i
		r.keys = append(r.keys, ringKey{id: id, key: append([]byte(nil), k...), aead: aead})
	}
	return r, nil
}

// Current returns the key new values are sealed under.
func (r *KeyRing) Current() []byte { return r.keys[0].key }

// Keys returns the ring's keys, the current first.
func (r *KeyRing) Keys() [][]byte {
	out := make([][]byte, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.key
	}
	return out
}

// IDs returns the IDs of the ring's keys (DataKeyID), the current first.
func (r *KeyRing) IDs() []string {
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		out[i] = hex.EncodeToString(k.id[:])
	}
	return out
}

// Seal encrypts plaintext with AES-256-GCM under the current key
// and returns version byte || key ID || nonce || ciphertext+tag. aad is
// authenticated but not stored: pass what ties the value to its row (the
// integration ID, say), so a sealed value copied to another row does not
// open there.
func (r *KeyRing) Seal(plaintext, aad []byte) ([]byte, error) {
	k := r.keys[0]
	n := 1 + keyIDSize + k.aead.NonceSize()
	out := make([]byte, n, n+len(plaintext)+k.aead.Overhead())
	out[0] = atRestV2
	copy(out[1:], k.id[:])
	if _, err := rand.Read(out[1+keyIDSize:]); err != nil {
		return nil, fmt.Errorf("seal at rest: %w", err)
	}
	return k.aead.Seal(out, out[1+keyIDSize:], plaintext, atRestAAD(out[:1+keyIDSize], aad)), nil
}

// Open decrypts a value sealed under any key of the ring with the
// same aad: a v2 value with the key it names, a v1 value (written before
// key IDs) with each key in turn.
func (r *KeyRing) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrAtRestDecrypt)
	}
	switch sealed[0] {
	case atRestV1:
		for _, k := range r.keys {
			if plain, err := openV1(k.aead, sealed, aad); err == nil {
				return plain, nil
			}
		}
		return nil, fmt.Errorf("%w: wrong key or aad, or data altered (a value without key ID, tried with every key of the ring)", ErrAtRestDecrypt)
	case atRestV2:
		k, err := r.keyOf(sealed)
		if err != nil {
			return nil, err
		}
		return openV2(k.aead, sealed, aad)
	}
	return nil, fmt.Errorf("%w: unknown version byte 0x%02x", ErrAtRestDecrypt, sealed[0])
}

func (r *KeyRing) keyOf(sealed []byte) (ringKey, error) {
	if len(sealed) < 1+keyIDSize {
		return ringKey{}, fmt.Errorf("%w: %d bytes, too short", ErrAtRestDecrypt, len(sealed))
	}
	id := [keyIDSize]byte(sealed[1 : 1+keyIDSize])
	for _, k := range r.keys {
		if k.id == id {
			return k, nil
		}
	}
	return ringKey{}, fmt.Errorf("%w: %w: key %x (add that key back to the key file, or the value is lost)", ErrAtRestDecrypt, ErrDataKeyNotInRing, id)
}

// SealedKeyID returns the ID of the data key a sealed value names, and
// false for a value without one (sealed before key IDs, or not a sealed
// value at all).
func SealedKeyID(sealed []byte) (string, bool) {
	if len(sealed) < 1+keyIDSize || sealed[0] != atRestV2 {
		return "", false
	}
	return hex.EncodeToString(sealed[1 : 1+keyIDSize]), true
}

// SealAtRest seals plaintext under key alone: KeyRing.Seal with a ring of
// one key.
func SealAtRest(key, plaintext, aad []byte) ([]byte, error) {
	r, err := NewKeyRing(key)
	if err != nil {
		return nil, fmt.Errorf("seal at rest: %w", err)
	}
	return r.Seal(plaintext, aad)
}

// OpenAtRest opens a value sealed under key: KeyRing.Open with a ring of
// one key.
func OpenAtRest(key, sealed, aad []byte) ([]byte, error) {
	r, err := NewKeyRing(key)
	if err != nil {
		return nil, fmt.Errorf("open at rest: %w", err)
	}
	return r.Open(sealed, aad)
}

func openV1(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < 1+n+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrAtRestDecrypt, len(sealed))
	}
	plaintext, err := aead.Open(nil, sealed[1:1+n], sealed[1+n:], atRestAAD(sealed[:1], aad))
	if err != nil {
		return nil, fmt.Errorf("%w: wrong key or aad, or data altered", ErrAtRestDecrypt)
	}
	return plaintext, nil
}

func openV2(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	h := 1 + keyIDSize
	n := aead.NonceSize()
	if len(sealed) < h+n+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrAtRestDecrypt, len(sealed))
	}
	plaintext, err := aead.Open(nil, sealed[h:h+n], sealed[h+n:], atRestAAD(sealed[:h], aad))
	if err != nil {
		return nil, fmt.Errorf("%w: wrong aad, or data altered", ErrAtRestDecrypt)
	}
	return plaintext, nil
}

func atRestAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != DataKeySize {
		return nil, fmt.Errorf("%w: got %d", ErrAtRestKey, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// atRestAAD prefixes the caller's aad with the value's header (version
// byte, and key ID from v2 on), so the header is authenticated too.
func atRestAAD(header, aad []byte) []byte {
	return append(append([]byte(nil), header...), aad...)
}
