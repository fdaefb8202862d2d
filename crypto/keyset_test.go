package crypto_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/crypto"
)

func newEd25519(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestKeySetAnnounce: a statement signed by the pinned key verifies and
// names the announced key; the grace of the previous key ends on time.
func TestKeySetAnnounce(t *testing.T) {
	oldPub, oldKey := newEd25519(t)
	newPub, newKey := newEd25519(t)
	now := time.Unix(1_800_000_000, 0).UTC()
	announce, err := crypto.SignKeySet(&crypto.KeySet{V: 1, IssuedAt: now, Current: oldPub, Next: newPub}, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := announce.Verify([]ed25519.PublicKey{oldPub})
	if err != nil {
		t.Fatalf("announcement signed by the pinned key: %v", err)
	}
	if got := ks.Accepted(now); len(got) != 2 || !got[0].Equal(oldPub) || !got[1].Equal(newPub) {
		t.Fatalf("accepted after the announcement: %x, want the old then the new key", got)
	}
	until := now.Add(time.Hour)
	switched, err := crypto.SignKeySet(&crypto.KeySet{V: 1, IssuedAt: now, Current: newPub, Previous: oldPub, PreviousUntil: &until}, newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	ks, err = switched.Verify([]ed25519.PublicKey{oldPub})
	if err != nil {
		t.Fatalf("a collector that pins only the old key takes the switch during the grace: %v", err)
	}
	if got := ks.Accepted(until.Add(-time.Second)); len(got) != 2 || !got[1].Equal(oldPub) {
		t.Errorf("during the grace: %x, want the new then the old key", got)
	}
	if got := ks.Accepted(until); len(got) != 1 || !got[0].Equal(newPub) {
		t.Errorf("after the grace: %x, want the new key alone", got)
	}
}

// TestKeySetRefused: a statement signed by no pinned key, with a forged or
// cross-domain signature, or malformed, is refused.
func TestKeySetRefused(t *testing.T) {
	pinned, pinnedKey := newEd25519(t)
	attackerPub, attackerKey := newEd25519(t)
	now := time.Unix(1_800_000_000, 0).UTC()
	ks := &crypto.KeySet{V: 1, IssuedAt: now, Current: pinned, Next: attackerPub}
	bySelf, err := crypto.SignKeySet(ks, attackerKey)
	if err != nil {
		t.Fatal(err)
	}
	good, err := crypto.SignKeySet(ks, pinnedKey)
	if err != nil {
		t.Fatal(err)
	}
	// The attacker's signature, labelled as the pinned key's.
	forged := *bySelf
	forged.Signatures = []crypto.KeySetSignature{{Key: pinned, Sig: bySelf.Signatures[0].Sig}}
	// A good signature over another statement.
	swapped := *good
	swapped.Statement = append([]byte(nil), good.Statement...)
	swapped.Statement[len(swapped.Statement)-2] ^= 1
	// The pinned key's signature over the same bytes without the domain.
	nodomain := *good
	nodomain.Signatures = []crypto.KeySetSignature{{Key: pinned, Sig: ed25519.Sign(pinnedKey, good.Statement)}}
	bad, err := crypto.SignKeySet(&crypto.KeySet{V: 1, IssuedAt: now, Current: pinned}, pinnedKey)
	if err != nil {
		t.Fatal(err)
	}
	bad.Statement = []byte(`{"v":1,"issued_at":"2027-01-15T08:00:00Z","current":"AAAA"}`)
	bad.Signatures[0].Sig = ed25519.Sign(pinnedKey, append([]byte("collector-platform-keys-v1\x00"), bad.Statement...))
	for name, s := range map[string]*crypto.SignedKeySet{
		"unsigned":          {Statement: good.Statement},
		"signed by its own": bySelf,
		"forged":            &forged,
		"altered":           &swapped,
		"no domain":         &nodomain,
		"short current key": bad,
		"empty":             {},
	} {
		if _, err := s.Verify([]ed25519.PublicKey{pinned}); !errors.Is(err, crypto.ErrKeySetRefused) {
			t.Errorf("%s: err = %v, want ErrKeySetRefused", name, err)
		}
	}
	if _, err := good.Verify(nil); !errors.Is(err, crypto.ErrKeySetRefused) {
		t.Errorf("no pinned key: err = %v, want ErrKeySetRefused", err)
	}
}

// TestKeySetCAPins: a statement's CA pins are accepted, the previous one
// until its grace ends, and malformed pins are refused; the largest
// statement (three keys, three pins) fits the bounds.
func TestKeySetCAPins(t *testing.T) {
	pub, key := newEd25519(t)
	next, _ := newEd25519(t)
	prev, _ := newEd25519(t)
	now := time.Unix(1_800_000_000, 0).UTC()
	until := now.Add(time.Hour)
	pin := func(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }
	ks := &crypto.KeySet{V: 1, IssuedAt: now, Current: pub, Next: next, Previous: prev, PreviousUntil: &until,
		CA: &crypto.CAPins{Current: pin('b'), Next: pin('c'), Previous: pin('a'), PreviousUntil: &until}}
	s, err := crypto.SignKeySet(ks, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify([]ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.CA.Accepted(until.Add(-time.Second)); !slices.Equal(p, []string{pin('b'), pin('c'), pin('a')}) {
		t.Errorf("during the grace: %q", p)
	}
	if p := got.CA.Accepted(until); !slices.Equal(p, []string{pin('b'), pin('c')}) {
		t.Errorf("after the grace: %q, want the previous CA refused", p)
	}
	for name, ca := range map[string]*crypto.CAPins{
		"no current":     {},
		"short":          {Current: "sha256:abcd"},
		"not hex":        {Current: pin('z')},
		"upper case":     {Current: pin('B')},
		"no grace":       {Current: pin('b'), Previous: pin('a')},
		"grace alone":    {Current: pin('b'), PreviousUntil: &until},
		"other hash":     {Current: "sha512:" + strings.Repeat("a", 64)},
		"bad next":       {Current: pin('b'), Next: "x"},
		"control in pin": {Current: pin('b'), Next: "sha256:\x1b[31m" + strings.Repeat("a", 59)},
	} {
		if _, err := crypto.SignKeySet(&crypto.KeySet{V: 1, IssuedAt: now, Current: pub, CA: ca}, key); err == nil {
			t.Errorf("%s: a malformed CA section was signed", name)
		}
	}
}
