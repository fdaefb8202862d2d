package crypto_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"strings"
	"testing"

	"github.com/collectorhq/collector/crypto"
)

func TestHPKEKeyRoundTrip(t *testing.T) {
	k, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	priv := k.MarshalPrivate()
	if len(priv) != crypto.HPKEPrivateKeySize {
		t.Errorf("private key is %d bytes, want %d", len(priv), crypto.HPKEPrivateKeySize)
	}
	if got := len(k.PublicKey()); got != crypto.HPKEPublicKeySize {
		t.Errorf("public key is %d bytes, want %d", got, crypto.HPKEPublicKeySize)
	}
	k2, err := crypto.ParseHPKEPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k2.PublicKey(), k.PublicKey()) {
		t.Error("parsed key has another public key")
	}
	if !bytes.Equal(k2.MarshalPrivate(), priv) {
		t.Error("parsed key marshals differently")
	}
	if err := crypto.ValidateHPKEPublicKey(k.PublicKey()); err != nil {
		t.Errorf("ValidateHPKEPublicKey(valid) = %v", err)
	}
	// Returned slices are copies: mutating them does not change the key.
	k.PublicKey()[0] ^= 0xff
	k.MarshalPrivate()[0] ^= 0xff
	if !bytes.Equal(k2.PublicKey(), k.PublicKey()) || !bytes.Equal(k.MarshalPrivate(), priv) {
		t.Error("key shares memory with returned slices")
	}
}

func TestParseHPKEPrivateKeyBad(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 31), make([]byte, 33), make([]byte, 64)} {
		if _, err := crypto.ParseHPKEPrivateKey(b); !errors.Is(err, crypto.ErrInvalidKey) {
			t.Errorf("ParseHPKEPrivateKey(%d bytes) = %v, want ErrInvalidKey", len(b), err)
		}
	}
}

func TestValidateHPKEPublicKeyBad(t *testing.T) {
	k, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := k.PublicKey()
	allFF := bytes.Repeat([]byte{0xff}, crypto.HPKEPublicKeySize)
	// ML-KEM half valid, X25519 half the all-zero (low-order) point.
	lowOrder := append(bytes.Clone(pub[:1184]), make([]byte, 32)...)
	ed, _, _ := ed25519.GenerateKey(nil)
	cases := map[string][]byte{
		"empty":            nil,
		"short":            pub[:len(pub)-1],
		"long":             append(bytes.Clone(pub), 0),
		"ed25519 key":      ed,
		"bad mlkem coeffs": allFF,
		"low-order x25519": lowOrder,
	}
	for name, b := range cases {
		if err := crypto.ValidateHPKEPublicKey(b); !errors.Is(err, crypto.ErrInvalidKey) {
			t.Errorf("%s: ValidateHPKEPublicKey = %v, want ErrInvalidKey", name, err)
		}
	}
}

func TestPEMRoundTrip(t *testing.T) {
	der := []byte("0123456789abcdef0123456789abcdef")
	p := crypto.EncodePrivateKeyPEM(crypto.PEMTypeHPKEPrivate, der)
	if !strings.HasPrefix(string(p), "-----BEGIN HPKE PRIVATE KEY-----\n") {
		t.Errorf("PEM starts %q", p[:40])
	}
	got, err := crypto.DecodePrivateKeyPEM(crypto.PEMTypeHPKEPrivate, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, der) {
		t.Errorf("got %x, want %x", got, der)
	}
	if _, err := crypto.DecodePrivateKeyPEM(crypto.PEMTypeHPKEPrivate, append([]byte("\n  \n"), append(p, "\n\n"...)...)); err != nil {
		t.Errorf("surrounding whitespace refused: %v", err)
	}
}

func TestDecodePrivateKeyPEMBad(t *testing.T) {
	good := crypto.EncodePrivateKeyPEM(crypto.PEMTypeEd25519Private, make([]byte, 32))
	withHeader := []byte("-----BEGIN ED25519 PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END ED25519 PRIVATE KEY-----\n")
	cases := map[string][]byte{
		"empty":        nil,
		"not pem":      []byte("hello"),
		"wrong type":   crypto.EncodePrivateKeyPEM("RSA PRIVATE KEY", make([]byte, 32)),
		"two blocks":   append(bytes.Clone(good), good...),
		"trailing":     append(bytes.Clone(good), "junk"...),
		"leading":      append([]byte("junk\n"), good...),
		"with headers": withHeader,
	}
	for name, b := range cases {
		if _, err := crypto.DecodePrivateKeyPEM(crypto.PEMTypeEd25519Private, b); !errors.Is(err, crypto.ErrInvalidKey) {
			t.Errorf("%s: DecodePrivateKeyPEM = %v, want ErrInvalidKey", name, err)
		}
	}
}

func TestKeyFileHelpers(t *testing.T) {
	_, edPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ed2, err := crypto.ParseEd25519PrivateKeyPEM(crypto.MarshalEd25519PrivateKeyPEM(edPriv))
	if err != nil {
		t.Fatal(err)
	}
	if !edPriv.Equal(ed2) {
		t.Error("ed25519 key changed in PEM round trip")
	}
	if _, err := crypto.ParseEd25519PrivateKeyPEM(crypto.EncodePrivateKeyPEM(crypto.PEMTypeEd25519Private, edPriv)); !errors.Is(err, crypto.ErrInvalidKey) {
		t.Errorf("64-byte ed25519 key accepted as seed: %v", err)
	}

	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	hk2, err := crypto.ParseHPKEPrivateKeyPEM(crypto.MarshalHPKEPrivateKeyPEM(hk))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hk.PublicKey(), hk2.PublicKey()) {
		t.Error("hpke key changed in PEM round trip")
	}
	if _, err := crypto.ParseHPKEPrivateKeyPEM(crypto.MarshalEd25519PrivateKeyPEM(edPriv)); !errors.Is(err, crypto.ErrInvalidKey) {
		t.Errorf("ed25519 file accepted as hpke key: %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	// sha256("abc")
	const want = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := crypto.Fingerprint([]byte("abc")); got != want {
		t.Errorf("Fingerprint(abc) = %q, want %q", got, want)
	}
}

func TestHPKESuiteIDs(t *testing.T) {
	if got := hpke.MLKEM768X25519().ID(); got != crypto.HPKEKEMID {
		t.Errorf("KEM ID 0x%04x, constant 0x%04x", got, crypto.HPKEKEMID)
	}
	if got := hpke.HKDFSHA256().ID(); got != crypto.HPKEKDFID {
		t.Errorf("KDF ID 0x%04x, constant 0x%04x", got, crypto.HPKEKDFID)
	}
	if got := hpke.ChaCha20Poly1305().ID(); got != crypto.HPKEAEADID {
		t.Errorf("AEAD ID 0x%04x, constant 0x%04x", got, crypto.HPKEAEADID)
	}
}
