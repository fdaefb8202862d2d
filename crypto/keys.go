package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types of the key files the collector keeps in /etc/collector.
// Both carry a 32-byte seed (see docs/auth.md).
const (
	// PEMTypeEd25519Private is the PEM type of an Ed25519 identity key file;
	// its bytes are the 32-byte seed of ed25519.NewKeyFromSeed.
	PEMTypeEd25519Private = "ED25519 PRIVATE KEY"
	// PEMTypeHPKEPrivate is the PEM type of an HPKE key file; its bytes are
	// what HPKEKey.MarshalPrivate returns.
	PEMTypeHPKEPrivate = "HPKE PRIVATE KEY"
)

// HPKE suite identifiers (RFC 9180 registry values) used by the job
// envelope, exported so the platform can show or record them.
const (
	// HPKEKEMID is the KEM identifier of MLKEM768X25519 (ML-KEM-768 + X25519 hybrid).
	HPKEKEMID uint16 = 0x647a
	// HPKEKDFID is the KDF identifier of HKDF-SHA256.
	HPKEKDFID uint16 = 0x0001
	// HPKEAEADID is the AEAD identifier of ChaCha20Poly1305.
	HPKEAEADID uint16 = 0x0003
)

// Sizes of the HPKE KEM encodings, fixed by MLKEM768X25519.
const (
	// HPKEPrivateKeySize is the size of the private key seed.
	HPKEPrivateKeySize = 32
	// HPKEPublicKeySize is the size of an encoded public key
	// (ML-KEM-768 encapsulation key followed by an X25519 point).
	HPKEPublicKeySize = 1184 + 32
	// HPKEEncSize is the size of the encapsulated key in an envelope.
	HPKEEncSize = 1088 + 32
)

// ErrInvalidKey reports key bytes that do not decode to a usable key.
var ErrInvalidKey = errors.New("invalid key")

// The suite is fixed: a key or envelope never negotiates it. ChaCha20Poly1305
// rather than AES-256-GCM because collectors run on whatever VM a customer
// gives them, and ChaCha20 is constant-time and fast without AES hardware.
func hpkeKEM() hpke.KEM   { return hpke.MLKEM768X25519() }
func hpkeKDF() hpke.KDF   { return hpke.HKDFSHA256() }
func hpkeAEAD() hpke.AEAD { return hpke.ChaCha20Poly1305() }

// HPKEKey is a collector's HPKE key pair (KEM MLKEM768X25519), used to open
// job envelopes. The zero value is not usable: get one from GenerateHPKEKey
// or ParseHPKEPrivateKey.
type HPKEKey struct {
	priv hpke.PrivateKey
	seed []byte
	pub  []byte
}

// GenerateHPKEKey generates a new HPKE key pair from crypto/rand.
func GenerateHPKEKey() (*HPKEKey, error) {
	priv, err := hpkeKEM().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate hpke key: %w", err)
	}
	return newHPKEKey(priv)
}

// ParseHPKEPrivateKey decodes a private key from the bytes MarshalPrivate
// returned (a 32-byte seed).
func ParseHPKEPrivateKey(b []byte) (*HPKEKey, error) {
	if len(b) != HPKEPrivateKeySize {
		return nil, fmt.Errorf("%w: hpke private key is %d bytes, want %d", ErrInvalidKey, len(b), HPKEPrivateKeySize)
	}
	priv, err := hpkeKEM().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: hpke private key: %v", ErrInvalidKey, err)
	}
	return newHPKEKey(priv)
}

func newHPKEKey(priv hpke.PrivateKey) (*HPKEKey, error) {
	seed, err := priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("serialize hpke private key: %w", err)
	}
	return &HPKEKey{priv: priv, seed: seed, pub: priv.PublicKey().Bytes()}, nil
}

// MarshalPrivate returns the private key in its compact form, the 32-byte
// seed from which both halves of the hybrid key are derived. Keep it secret.
func (k *HPKEKey) MarshalPrivate() []byte { return bytes.Clone(k.seed) }

// PublicKey returns the KEM encoding of the public key
// (HPKEPublicKeySize bytes), the value a collector sends at enrollment.
func (k *HPKEKey) PublicKey() []byte { return bytes.Clone(k.pub) }

// ValidateHPKEPublicKey reports whether b is a usable MLKEM768X25519 public
// key. Beyond the encoding, it encapsulates to the key once, which catches
// an X25519 half that is a low-order point: the platform runs it on the key
// a collector enrolls with, so a bad key fails at enrollment, not per job.
func ValidateHPKEPublicKey(b []byte) error {
	if len(b) != HPKEPublicKeySize {
		return fmt.Errorf("%w: hpke public key is %d bytes, want %d", ErrInvalidKey, len(b), HPKEPublicKeySize)
	}
	pub, err := hpkeKEM().NewPublicKey(b)
	if err != nil {
		return fmt.Errorf("%w: hpke public key: %v", ErrInvalidKey, err)
	}
	if _, _, err := hpke.NewSender(pub, hpkeKDF(), hpkeAEAD(), nil); err != nil {
		return fmt.Errorf("%w: hpke public key: %v", ErrInvalidKey, err)
	}
	return nil
}

// EncodePrivateKeyPEM wraps der in a PEM block of type typ, such as
// PEMTypeEd25519Private or PEMTypeHPKEPrivate.
func EncodePrivateKeyPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// DecodePrivateKeyPEM returns the bytes of the single PEM block of type typ
// in pemBytes. It refuses another type, PEM headers (such as those of an
// encrypted key) and anything but whitespace around the block, so a file
// that is not exactly what the collector wrote is caught rather than half
// read.
func DecodePrivateKeyPEM(typ string, pemBytes []byte) ([]byte, error) {
	block, rest := pem.Decode(pemBytes)
	switch {
	case block == nil:
		return nil, fmt.Errorf("%w: no PEM block of type %q found", ErrInvalidKey, typ)
	case block.Type != typ:
		return nil, fmt.Errorf("%w: PEM block is of type %q, want %q", ErrInvalidKey, block.Type, typ)
	case len(block.Headers) != 0:
		return nil, fmt.Errorf("%w: PEM block %q has headers (encrypted keys are not supported)", ErrInvalidKey, typ)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, fmt.Errorf("%w: unexpected data after PEM block %q", ErrInvalidKey, typ)
	case len(bytes.TrimSpace(pemBytes[:bytes.Index(pemBytes, []byte("-----BEGIN"))])) != 0:
		return nil, fmt.Errorf("%w: unexpected data before PEM block %q", ErrInvalidKey, typ)
	}
	return block.Bytes, nil
}

// Fingerprint returns "sha256:" followed by the lowercase hex SHA-256 of the
// public key bytes pub, for display and logs.
func Fingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// MarshalEd25519PrivateKeyPEM encodes an Ed25519 identity key as a PEM file
// of type PEMTypeEd25519Private holding its 32-byte seed.
func MarshalEd25519PrivateKeyPEM(key ed25519.PrivateKey) []byte {
	return EncodePrivateKeyPEM(PEMTypeEd25519Private, key.Seed())
}

// ParseEd25519PrivateKeyPEM decodes a file written by
// MarshalEd25519PrivateKeyPEM.
func ParseEd25519PrivateKeyPEM(pemBytes []byte) (ed25519.PrivateKey, error) {
	seed, err := DecodePrivateKeyPEM(PEMTypeEd25519Private, pemBytes)
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: ed25519 seed is %d bytes, want %d", ErrInvalidKey, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// MarshalHPKEPrivateKeyPEM encodes an HPKE key as a PEM file of type
// PEMTypeHPKEPrivate holding MarshalPrivate's bytes.
func MarshalHPKEPrivateKeyPEM(key *HPKEKey) []byte {
	return EncodePrivateKeyPEM(PEMTypeHPKEPrivate, key.MarshalPrivate())
}

// ParseHPKEPrivateKeyPEM decodes a file written by MarshalHPKEPrivateKeyPEM.
func ParseHPKEPrivateKeyPEM(pemBytes []byte) (*HPKEKey, error) {
	seed, err := DecodePrivateKeyPEM(PEMTypeHPKEPrivate, pemBytes)
	if err != nil {
		return nil, err
	}
	return ParseHPKEPrivateKey(seed)
}
