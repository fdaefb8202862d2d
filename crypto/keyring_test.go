package crypto_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/collectorhq/collector/crypto"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k, err := crypto.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealV1 seals as the platform did before key IDs: 0x01 || nonce || GCM
// with aad 0x01 || aad.
func sealV1(t *testing.T, key, plain, aad []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 1+gcm.NonceSize())
	out[0] = 0x01
	rand.Read(out[1:])
	return gcm.Seal(out, out[1:], plain, append([]byte{0x01}, aad...))
}

func TestKeyRingRotation(t *testing.T) {
	oldKey, newKey := newKey(t), newKey(t)
	aad := []byte("int_7")
	old, _ := crypto.NewKeyRing(oldKey)
	during, err := crypto.NewKeyRing(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := crypto.NewKeyRing(newKey)

	underOld, err := old.Seal([]byte("s3cret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	underNew, err := during.Seal([]byte("s3cret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := crypto.SealedKeyID(underNew); id != crypto.DataKeyID(newKey) {
		t.Errorf("the ring sealed under %s, want the current key %s", id, crypto.DataKeyID(newKey))
	}
	legacy := sealV1(t, oldKey, []byte("s3cret"), aad)
	for name, v := range map[string][]byte{"old": underOld, "new": underNew, "v1": legacy} {
		got, err := during.Open(v, aad)
		if err != nil || string(got) != "s3cret" {
			t.Errorf("during the rotation, the value under the %s key: %q, %v", name, got, err)
		}
	}
	if id, ok := crypto.SealedKeyID(legacy); ok {
		t.Errorf("a value without key ID names key %s", id)
	}

	// The old key removed: what is still under it fails, saying why.
	if _, err := after.Open(underOld, aad); !errors.Is(err, crypto.ErrDataKeyNotInRing) || !errors.Is(err, crypto.ErrAtRestDecrypt) {
		t.Errorf("value under a removed key: %v, want ErrDataKeyNotInRing and ErrAtRestDecrypt", err)
	} else if !strings.Contains(err.Error(), crypto.DataKeyID(oldKey)) {
		t.Errorf("the error %q does not name the missing key %s", err, crypto.DataKeyID(oldKey))
	}
	if _, err := after.Open(legacy, aad); !errors.Is(err, crypto.ErrAtRestDecrypt) {
		t.Errorf("v1 value under a removed key: %v", err)
	}
	if got, err := after.Open(underNew, aad); err != nil || string(got) != "s3cret" {
		t.Errorf("value under the kept key: %q, %v", got, err)
	}
	// The key ID is authenticated: a value relabelled to another key of
	// the ring does not open.
	relabelled := bytes.Clone(underOld)
	copy(relabelled[1:5], underNew[1:5])
	if _, err := during.Open(relabelled, aad); !errors.Is(err, crypto.ErrAtRestDecrypt) {
		t.Errorf("relabelled value: %v", err)
	}
}

func TestKeyRingRefuses(t *testing.T) {
	k := newKey(t)
	if _, err := crypto.NewKeyRing(); err == nil {
		t.Error("an empty ring was accepted")
	}
	if _, err := crypto.NewKeyRing(k, k); err == nil {
		t.Error("a ring with the same key twice was accepted")
	}
	if _, err := crypto.NewKeyRing(k, k[:16]); !errors.Is(err, crypto.ErrAtRestKey) {
		t.Errorf("a 16-byte key: %v", err)
	}
}

func TestDataKeyFile(t *testing.T) {
	a, b := newKey(t), newKey(t)
	got, err := crypto.ParseDataKeyFile(crypto.FormatDataKeyFile([][]byte{a, b}))
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
		t.Fatalf("round trip: %x, %v", got, err)
	}
	// The older form: 32 raw bytes, a ring of one key.
	if got, err := crypto.ParseDataKeyFile(a); err != nil || len(got) != 1 || !bytes.Equal(got[0], a) {
		t.Errorf("raw key: %x, %v", got, err)
	}
	// What an operator writes by hand: comments, blank lines, CRLF.
	hand := "# added today\r\n\r\n" + base64.StdEncoding.EncodeToString(b) + "\r\n  " + base64.StdEncoding.EncodeToString(a) + "  \n"
	if got, err := crypto.ParseDataKeyFile([]byte(hand)); err != nil || len(got) != 2 || !bytes.Equal(got[0], b) {
		t.Errorf("hand-written file: %x, %v", got, err)
	}
	for name, bad := range map[string]string{
		"empty":         "",
		"comments only": "# nothing\n",
		"short key":     base64.StdEncoding.EncodeToString(a[:16]) + "\n",
		"not base64":    "not a key!\n",
		"33 raw bytes":  string(append(bytes.Clone(a), 'x')),
		"hex, not b64":  strings.Repeat("ab", 32) + "\n",
	} {
		if _, err := crypto.ParseDataKeyFile([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(a)) {
			t.Errorf("%s: the error quotes a key: %v", name, err)
		}
	}
}

func FuzzParseDataKeyFile(f *testing.F) {
	f.Add(crypto.FormatDataKeyFile([][]byte{make([]byte, 32)}))
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := crypto.ParseDataKeyFile(b)
		if err != nil {
			return
		}
		for _, k := range keys {
			if len(k) != crypto.DataKeySize {
				t.Fatalf("a %d-byte key", len(k))
			}
		}
	})
}
