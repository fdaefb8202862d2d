package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// DataKeySize is the size of a data key for SealAtRest, in bytes.
const DataKeySize = 32

// atRestV1 is the first byte of a sealed value: AES-256-GCM, 12-byte random
// nonce. A new scheme gets a new byte, so old rows stay readable.
const atRestV1 = 0x01

// ErrAtRestDecrypt is returned by OpenAtRest for a value that does not open:
// wrong key, wrong aad, unknown version byte, truncated or tampered.
var ErrAtRestDecrypt = errors.New("at-rest decryption failed")

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

// SealAtRest encrypts plaintext with AES-256-GCM under key and returns
// version byte || nonce || ciphertext+tag. aad is authenticated but not
// stored: pass what ties the value to its row (the integration ID, say), so
// a sealed value copied to another row does not open there.
func SealAtRest(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := atRestAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("seal at rest: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = atRestV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal at rest: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, atRestAAD(aad)), nil
}

// OpenAtRest decrypts a value from SealAtRest with the same key and aad.
func OpenAtRest(key, sealed, aad []byte) ([]byte, error) {
	aead, err := atRestAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("open at rest: %w", err)
	}
	n := aead.NonceSize()
	if len(sealed) < 1+n+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrAtRestDecrypt, len(sealed))
	}
	if sealed[0] != atRestV1 {
		return nil, fmt.Errorf("%w: unknown version byte 0x%02x", ErrAtRestDecrypt, sealed[0])
	}
	plaintext, err := aead.Open(nil, sealed[1:1+n], sealed[1+n:], atRestAAD(aad))
	if err != nil {
		return nil, fmt.Errorf("%w: wrong key or aad, or data altered", ErrAtRestDecrypt)
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

// atRestAAD prefixes the caller's aad with the version byte, so the version
// is authenticated too.
func atRestAAD(aad []byte) []byte {
	return append([]byte{atRestV1}, aad...)
}
