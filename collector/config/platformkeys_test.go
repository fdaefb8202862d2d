package config_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/crypto"
)

func signSet(t *testing.T, ks *crypto.KeySet, keys ...ed25519.PrivateKey) *crypto.SignedKeySet {
	t.Helper()
	s, err := crypto.SignKeySet(ks, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPlatformKeysPinning: the collector pins an announced key only under
// a key it accepts, never from a set signed by another key, never rolls
// back to an older set, keeps what it pinned across restarts (the file,
// 0600), and drops the old key when the grace ends in its clock.
func TestPlatformKeysPinning(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	oldPub, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	evilPub, evilKey, _ := ed25519.GenerateKey(rand.Reader)
	p, err := config.NewPlatformKeys(dir, oldPub, enrolledPin, clock)
	if err != nil {
		t.Fatal(err)
	}
	accepts := func(p *config.PlatformKeys, want ...ed25519.PublicKey) {
		t.Helper()
		got := p.Accepted()
		if len(got) != len(want) {
			t.Fatalf("accepted %d keys, want %d", len(got), len(want))
		}
		for i := range want {
			if !got[i].Equal(want[i]) {
				t.Fatalf("accepted key %d is %s, want %s", i, crypto.Fingerprint(got[i]), crypto.Fingerprint(want[i]))
			}
		}
	}
	accepts(p, oldPub)

	// An attacker's key announced under its own signature, or with the
	// signature of the pinned key over something else.
	evil := &crypto.KeySet{V: 1, IssuedAt: now, Current: oldPub, Next: evilPub}
	for name, s := range map[string]*crypto.SignedKeySet{
		"unsigned":                     {Statement: signSet(t, evil, evilKey).Statement},
		"signed by itself":             signSet(t, evil, evilKey),
		"signed by the next key to be": signSet(t, &crypto.KeySet{V: 1, IssuedAt: now, Current: newPub}, newKey),
	} {
		if changed, err := p.Apply(s); !errors.Is(err, crypto.ErrKeySetRefused) || changed {
			t.Errorf("%s: changed %v, err %v; want refused", name, changed, err)
		}
	}
	accepts(p, oldPub)
	if _, err := os.Stat(filepath.Join(dir, config.PlatformKeysFile)); !os.IsNotExist(err) {
		t.Fatalf("a refused set wrote the file: %v", err)
	}

	announce := signSet(t, &crypto.KeySet{V: 1, IssuedAt: now, Current: oldPub, Next: newPub}, oldKey)
	if changed, err := p.Apply(announce); err != nil || !changed {
		t.Fatalf("announcement: changed %v, %v", changed, err)
	}
	if changed, err := p.Apply(announce); err != nil || changed {
		t.Fatalf("the same announcement again: changed %v, %v; want no change", changed, err)
	}
	accepts(p, oldPub, newPub)
	if fi, err := os.Stat(filepath.Join(dir, config.PlatformKeysFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pinned keys file: %v, %v; want mode 0600", fi, err)
	}

	until := now.Add(time.Hour)
	switched := signSet(t, &crypto.KeySet{V: 1, IssuedAt: now.Add(time.Minute), Current: newPub, Previous: oldPub, PreviousUntil: &until}, newKey, oldKey)
	if changed, err := p.Apply(switched); err != nil || !changed {
		t.Fatalf("switch: changed %v, %v", changed, err)
	}
	accepts(p, newPub, oldPub)
	// A replayed announcement (older) does not bring the old key back as
	// current once it is retired.
	if changed, err := p.Apply(announce); err != nil || changed {
		t.Fatalf("replayed announcement: changed %v, %v; want ignored", changed, err)
	}
	// Another reader (the runner) sees what the daemon pinned.
	runner, err := config.NewPlatformKeys(dir, oldPub, enrolledPin, clock)
	if err != nil {
		t.Fatal(err)
	}
	accepts(runner, newPub, oldPub)

	now = until
	accepts(p, newPub)
	accepts(runner, newPub)
	// After the grace, a set signed by the old key alone is refused.
	late := signSet(t, &crypto.KeySet{V: 1, IssuedAt: now, Current: oldPub}, oldKey)
	if _, err := p.Apply(late); !errors.Is(err, crypto.ErrKeySetRefused) {
		t.Fatalf("a set signed by the retired key: %v, want refused", err)
	}

	if err := os.WriteFile(filepath.Join(dir, config.PlatformKeysFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.NewPlatformKeys(dir, oldPub, enrolledPin, clock); err == nil {
		t.Fatal("a damaged keys file was taken as the enrolled key alone")
	}
}

var enrolledPin = "sha256:" + strings.Repeat("e", 64)

// TestPlatformKeysCAPins: the TLS pins are the enrolled one until a
// pinned set states the CA; then the set's, the previous CA until its
// grace ends in the collector's clock, and a set signed by another key
// changes none of them. The daemon pins, the runner reads.
func TestPlatformKeysCAPins(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, evilKey, _ := ed25519.GenerateKey(rand.Reader)
	daemon, err := config.NewPlatformKeys(dir, pub, enrolledPin, clock)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := config.NewPlatformKeys(dir, pub, enrolledPin, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	runner.SetClock(clock)
	pins := func(p *config.PlatformKeys, want ...string) {
		t.Helper()
		if got := p.CAPins(); !slices.Equal(got, want) {
			t.Fatalf("CA pins %q, want %q", got, want)
		}
	}
	pins(daemon, enrolledPin)
	newPin := "sha256:" + strings.Repeat("1", 64)
	evilPin := "sha256:" + strings.Repeat("6", 64)
	if _, err := daemon.Apply(signSet(t, &crypto.KeySet{V: 1, IssuedAt: now, Current: pub, CA: &crypto.CAPins{Current: evilPin}}, evilKey)); err == nil {
		t.Fatal("a CA pin signed by another key was pinned")
	}
	pins(runner, enrolledPin)

	// Announced, then switched with a grace.
	if _, err := daemon.Apply(signSet(t, &crypto.KeySet{V: 1, IssuedAt: now, Current: pub, CA: &crypto.CAPins{Current: enrolledPin, Next: newPin}}, key)); err != nil {
		t.Fatal(err)
	}
	pins(runner, enrolledPin, newPin)
	until := now.Add(time.Hour)
	if _, err := daemon.Apply(signSet(t, &crypto.KeySet{V: 1, IssuedAt: now.Add(time.Second), Current: pub,
		CA: &crypto.CAPins{Current: newPin, Previous: enrolledPin, PreviousUntil: &until}}, key)); err != nil {
		t.Fatal(err)
	}
	pins(runner, newPin, enrolledPin)
	now = until
	pins(runner, newPin)
	pins(daemon, newPin)
}

// TestPlatformKeysConcurrentPins: the daemon and the runner pin at the
// same moment, one an older set than the other, each process with its own
// PlatformKeys: the newer set is the one that stays.
func TestPlatformKeysConcurrentPins(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	pin := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	older := signSet(t, &crypto.KeySet{V: 1, IssuedAt: now, Current: pub, CA: &crypto.CAPins{Current: pin("a"), Next: pin("b")}}, key)
	until := now.Add(time.Hour)
	newer := signSet(t, &crypto.KeySet{V: 1, IssuedAt: now.Add(time.Second), Current: pub,
		CA: &crypto.CAPins{Current: pin("b"), Previous: pin("a"), PreviousUntil: &until}}, key)
	for i := range 200 {
		dir := t.TempDir()
		daemon, err := config.NewPlatformKeys(dir, pub, pin("a"), clock)
		if err != nil {
			t.Fatal(err)
		}
		runner, err := config.NewPlatformKeys(dir, pub, pin("a"), clock)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { daemon.Apply(older) })
		wg.Go(func() { runner.Apply(newer) })
		wg.Wait()
		fresh, err := config.NewPlatformKeys(dir, pub, pin("a"), clock)
		if err != nil {
			t.Fatal(err)
		}
		if got := fresh.CAPins(); !slices.Equal(got, []string{pin("b"), pin("a")}) {
			t.Fatalf("round %d: the file holds pins %q: the older set replaced the newer", i, got)
		}
	}
}
