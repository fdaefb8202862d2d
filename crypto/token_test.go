package crypto_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/collectorhq/collector/crypto"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := crypto.NewToken("ct_")
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := strings.CutPrefix(tok, "ct_")
		if !ok {
			t.Fatalf("token %q lacks its prefix", tok)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
		if err != nil || len(raw) != 32 {
			t.Fatalf("token %q is not 256 bits of base64url: %v", tok, err)
		}
		if seen[tok] {
			t.Fatalf("token %q issued twice", tok)
		}
		seen[tok] = true
	}
}

func TestHashToken(t *testing.T) {
	// sha256("abc")
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := crypto.HashToken("abc"); got != want {
		t.Errorf("HashToken(abc) = %q, want %q", got, want)
	}
	tok, _ := crypto.NewToken("ct_")
	if h := crypto.HashToken(tok); strings.Contains(h, tok) || len(h) != 64 {
		t.Errorf("HashToken(%q) = %q", tok, h)
	}
}
