package crypto_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/collectorhq/collector/crypto"
)

func TestAtRestRoundTrip(t *testing.T) {
	key, err := crypto.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != crypto.DataKeySize {
		t.Fatalf("data key is %d bytes", len(key))
	}
	for _, plain := range [][]byte{nil, []byte(`{"password":"s3cret"}`), bytes.Repeat([]byte{7}, 1<<16)} {
		sealed, err := crypto.SealAtRest(key, plain, []byte("int_7"))
		if err != nil {
			t.Fatal(err)
		}
		if sealed[0] != 0x02 {
			t.Errorf("version byte 0x%02x, want 0x02", sealed[0])
		}
		if id, ok := crypto.SealedKeyID(sealed); !ok || id != crypto.DataKeyID(key) {
			t.Errorf("sealed names key %q, %v; want %s", id, ok, crypto.DataKeyID(key))
		}
		if want := 1 + 4 + 12 + len(plain) + 16; len(sealed) != want {
			t.Errorf("sealed is %d bytes, want %d", len(sealed), want)
		}
		got, err := crypto.OpenAtRest(key, sealed, []byte("int_7"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("got %q, want %q", got, plain)
		}
	}
	a, _ := crypto.SealAtRest(key, []byte("x"), nil)
	b, _ := crypto.SealAtRest(key, []byte("x"), nil)
	if bytes.Equal(a, b) {
		t.Error("two seals of the same value are equal: nonce reused")
	}
}

func TestOpenAtRestRejects(t *testing.T) {
	key, _ := crypto.NewDataKey()
	otherKey, _ := crypto.NewDataKey()
	aad := []byte("int_7")
	sealed, err := crypto.SealAtRest(key, []byte(`{"password":"s3cret"}`), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name        string
		key, sealed []byte
		aad         []byte
	}{
		{"wrong aad", key, sealed, []byte("int_8")},
		{"no aad", key, sealed, nil},
		{"wrong key", otherKey, sealed, aad},
		{"tampered version", key, flip(0), aad},
		{"tampered key ID", key, flip(3), aad},
		{"tampered nonce", key, flip(8), aad},
		{"tampered ciphertext", key, flip(20), aad},
		{"tampered tag", key, flip(len(sealed) - 1), aad},
		{"truncated", key, sealed[:len(sealed)-1], aad},
		{"too short", key, sealed[:10], aad},
		{"empty", key, nil, aad},
	}
	for _, tt := range tests {
		got, err := crypto.OpenAtRest(tt.key, tt.sealed, tt.aad)
		if !errors.Is(err, crypto.ErrAtRestDecrypt) {
			t.Errorf("%s: got %q, %v; want ErrAtRestDecrypt", tt.name, got, err)
		}
	}
}

func TestAtRestBadKey(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33} {
		key := make([]byte, n)
		if _, err := crypto.SealAtRest(key, []byte("x"), nil); !errors.Is(err, crypto.ErrAtRestKey) {
			t.Errorf("SealAtRest with %d-byte key: %v", n, err)
		}
		if _, err := crypto.OpenAtRest(key, make([]byte, 64), nil); !errors.Is(err, crypto.ErrAtRestKey) {
			t.Errorf("OpenAtRest with %d-byte key: %v", n, err)
		}
	}
}
