package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
)

// testKeyRotation: a rotation is a compare-and-swap on the identity key,
// audited with it; the replaced key (its new tokens and the tokens it
// had) is accepted until the grace ends, and not after, nor after a
// re-enrollment; two rotations from the same key: one wins.
func testKeyRotation(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	now := time.Now()
	k1, k2, k3 := []byte("identity-key-1"), []byte("identity-key-2"), []byte("identity-key-3")
	h1, h2 := []byte("hpke-key-1"), []byte("hpke-key-2")
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "h-c1", IdentityKey: k1, HPKEKey: h1, Now: now}, ev("e", "c1")); err != nil {
		t.Fatal(err)
	}
	issue := func(jti, hash string, key []byte, at time.Time) error {
		return s.IssueAccessToken(ctx, jti, at.Add(time.Minute), store.AccessToken{Hash: hash, CollectorID: "c1",
			ExpiresAt: at.Add(15 * time.Minute), KeyFingerprint: crypto.Fingerprint(key)}, at)
	}
	if err := issue("j1", "a1", k1, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PreviousCollectorKey(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("previous key before any rotation: %v, want ErrNotFound", err)
	}
	if err := s.RotateCollectorKeys(ctx, store.KeyRotation{CollectorID: "c1", OldIdentityKey: k2, IdentityKey: k3, HPKEKey: h2,
		PreviousUntil: now.Add(time.Hour)}, ev("collector.keys_rotated", "c1")); !errors.Is(err, store.ErrStaleKey) {
		t.Errorf("rotation from a key the collector does not have = %v, want ErrStaleKey", err)
	}
	if err := s.RotateCollectorKeys(ctx, store.KeyRotation{CollectorID: "nobody", OldIdentityKey: k1, IdentityKey: k2, HPKEKey: h2,
		PreviousUntil: now.Add(time.Hour)}, ev("collector.keys_rotated", "nobody")); !errors.Is(err, store.ErrNotEnrolled) {
		t.Errorf("rotation of an unknown collector = %v, want ErrNotEnrolled", err)
	}
	before := auditLen(t, s)
	// Two rotations from k1 at once: one wins, the other finds k1 stale.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, k := range [][]byte{k2, k3} {
		wg.Go(func() {
			errs[i] = s.RotateCollectorKeys(ctx, store.KeyRotation{CollectorID: "c1", OldIdentityKey: k1, IdentityKey: k, HPKEKey: h2,
				PreviousUntil: now.Add(time.Hour)}, ev("collector.keys_rotated", "c1"))
		})
	}
	wg.Wait()
	won := k2
	switch {
	case errs[0] == nil && errors.Is(errs[1], store.ErrStaleKey):
	case errs[1] == nil && errors.Is(errs[0], store.ErrStaleKey):
		won = k3
	default:
		t.Fatalf("concurrent rotations: %v, %v; want one nil and one ErrStaleKey", errs[0], errs[1])
	}
	if n := auditLen(t, s); n != before+1 {
		t.Errorf("audit entries %d after one rotation, want %d", n, before+1)
	}
	c, err := s.Collector(ctx, "c1")
	if err != nil || string(c.IdentityKey) != string(won) || string(c.HPKEKey) != string(h2) {
		t.Fatalf("collector after rotation: %q %q, %v", c.IdentityKey, c.HPKEKey, err)
	}
	p, err := s.PreviousCollectorKey(ctx, "c1")
	if err != nil || string(p.IdentityKey) != string(k1) || !p.LiveFor(c.IdentityKey, now) || p.LiveFor(c.IdentityKey, now.Add(time.Hour)) {
		t.Fatalf("previous key %+v, %v", p, err)
	}
	// In the grace: the old key's token works, and the old key gets new ones.
	if id, err := s.AccessTokenCollector(ctx, "a1", now); err != nil || id != "c1" {
		t.Errorf("old key's token in the grace: %q, %v", id, err)
	}
	if err := issue("j2", "a2", k1, now); err != nil {
		t.Errorf("issue for the old key in the grace: %v", err)
	}
	// After it: neither.
	late := now.Add(time.Hour)
	if _, err := s.AccessTokenCollector(ctx, "a2", late); !errors.Is(err, store.ErrAccessInvalid) {
		t.Errorf("old key's token after the grace: %v, want ErrAccessInvalid", err)
	}
	if err := issue("j4", "a4", k1, late); !errors.Is(err, store.ErrStaleKey) {
		t.Errorf("issue for the old key after the grace = %v, want ErrStaleKey", err)
	}
	if err := issue("j3", "a3", won, late); err != nil {
		t.Fatal(err)
	}
	if id, err := s.AccessTokenCollector(ctx, "a3", late); err != nil || id != "c1" {
		t.Errorf("new key's token: %q, %v", id, err)
	}
	// A re-enrollment ends the previous key at once, grace or not.
	if err := s.ReplaceEnrollmentToken(ctx, store.EnrollmentToken{Hash: "h2-c1", CollectorID: "c1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("t", "c1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "h2-c1", IdentityKey: []byte("identity-key-4"), HPKEKey: h1, Now: now}, ev("e", "c1")); err != nil {
		t.Fatal(err)
	}
	if err := issue("j5", "a5", k1, now); !errors.Is(err, store.ErrStaleKey) {
		t.Errorf("issue for the rotated-out key after a re-enrollment = %v, want ErrStaleKey", err)
	}
}

func auditLen(t *testing.T, s store.Store) int {
	t.Helper()
	es, err := s.AuditEntries(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}
