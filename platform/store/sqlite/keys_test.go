package sqlite_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
)

// TestExtendedGraceNotTrusted: the rotated-out key's row carries a MAC
// too, so an attacker with write access to the database cannot keep a
// stolen old key working by moving its grace, or plant a key as previous.
func TestExtendedGraceNotTrusted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	old, next := []byte("old-key"), []byte("new-key")
	enrolled(t, s, "col_a", old)
	now := time.Now()
	if err := s.RotateCollectorKeys(ctx, store.KeyRotation{CollectorID: "col_a", OldIdentityKey: old, IdentityKey: next,
		HPKEKey: []byte("hpke-2"), PreviousUntil: now.Add(time.Minute)}, ev("collector.keys_rotated", "col_a")); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Hour)
	if _, err := raw(t, path).Exec(`UPDATE collector_previous_keys SET valid_until = ? WHERE collector_id = 'col_a'`, later.Add(time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PreviousCollectorKey(ctx, "col_a"); !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("previous key with a moved grace: %v, want ErrIntegrity", err)
	}
	err := s.IssueAccessToken(ctx, "j1", later.Add(time.Minute), store.AccessToken{Hash: "a1", CollectorID: "col_a",
		ExpiresAt: later.Add(15 * time.Minute), KeyFingerprint: crypto.Fingerprint(old)}, later)
	if !errors.Is(err, store.ErrStaleKey) {
		t.Errorf("token for the old key with a moved grace: %v, want ErrStaleKey", err)
	}
}
