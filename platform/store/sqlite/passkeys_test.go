package sqlite_test

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store/sqlite"
)

// pkStore is a store with one user and one session of it.
func pkStore(t *testing.T) (*sqlite.Store, string, access.Session, *testClock) {
	t.Helper()
	clock := &testClock{}
	path := filepath.Join(t.TempDir(), "p.db")
	s := openWith(t, path, testKey, clock.Now)
	now := clock.Now()
	u := access.User{ID: "usr_a", Login: "a", Role: access.RoleAdmin, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateUser(ctx, u, ev("user.created", u.ID)); err != nil {
		t.Fatal(err)
	}
	sess := access.Session{Hash: "sess-1", UserID: u.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), Stage: access.StageMFA, Method: "password"}
	if err := s.CreateSession(ctx, sess, nil); err != nil {
		t.Fatal(err)
	}
	return s, path, sess, clock
}

func passkey(id, user string, cred byte) access.Passkey {
	return access.Passkey{ID: id, UserID: user, RPID: "collector.test", CredentialID: []byte{cred, 1, 2, 3}, PublicKey: []byte{0xa5, cred},
		SignCount: 5, AAGUID: make([]byte, 16), Transports: []string{"internal", "hybrid"}, BackupEligible: true, Name: id, CreatedAt: time.Now()}
}

// TestPasskeyCeremonyBoundToSession: a ceremony is taken once, not after
// it expires, not once its session is rotated away, and not if its row
// was edited; a session that does not exist cannot hold one.
func TestPasskeyCeremonyBoundToSession(t *testing.T) {
	s, path, sess, clock := pkStore(t)
	c := access.PasskeyCeremony{SessionHash: sess.Hash, UserID: sess.UserID, Kind: access.CeremonyLogin, Data: []byte(`{"challenge":"x"}`),
		ExpiresAt: clock.Now().Add(access.PasskeyCeremonyTTL)}
	put := func(c access.PasskeyCeremony) {
		t.Helper()
		if err := s.PutPasskeyCeremony(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	take := func(kind string) error {
		_, err := s.TakePasskeyCeremony(ctx, sess.Hash, kind, clock.Now())
		return err
	}

	put(c)
	if err := take(access.CeremonyRegister); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("take of another kind: %v, want ErrNotFound", err)
	}
	got, err := s.TakePasskeyCeremony(ctx, sess.Hash, access.CeremonyLogin, clock.Now())
	if err != nil || string(got.Data) != string(c.Data) || got.UserID != sess.UserID {
		t.Fatalf("take = %+v, %v", got, err)
	}
	if err := take(access.CeremonyLogin); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("second take: %v, want ErrNotFound (one-time)", err)
	}

	put(c)
	clock.Advance(access.PasskeyCeremonyTTL)
	if err := take(access.CeremonyLogin); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("take at expiry: %v, want ErrNotFound", err)
	}

	c.ExpiresAt = clock.Now().Add(access.PasskeyCeremonyTTL)
	put(c)
	if _, err := raw(t, path).Exec(`UPDATE passkey_ceremonies SET data = '{"challenge":"attacker"}'`); err != nil {
		t.Fatal(err)
	}
	if err := take(access.CeremonyLogin); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("take of an edited ceremony: %v, want ErrNotFound", err)
	}

	put(c)
	n := sess
	n.Hash = "sess-2"
	if err := s.RotateSession(ctx, sess.Hash, n, nil); err != nil {
		t.Fatal(err)
	}
	var left int
	raw(t, path).QueryRow(`SELECT count(*) FROM passkey_ceremonies`).Scan(&left)
	if left != 0 {
		t.Errorf("%d ceremonies outlived their session's rotation", left)
	}
	c.SessionHash = "no-such-session"
	if err := s.PutPasskeyCeremony(ctx, c); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("ceremony of a missing session: %v, want ErrUnauthenticated", err)
	}
}

// TestPasskeyRows: a passkey round-trips, a credential ID is registered
// once (to anyone), a use must advance the counter (one of two
// concurrent uses of one count passes), an edited row grants nothing,
// and a second-factor reset removes passkeys and the user handle.
func TestPasskeyRows(t *testing.T) {
	s, path, sess, clock := pkStore(t)
	now := clock.Now()
	if err := s.CreateUser(ctx, access.User{ID: "usr_b", Login: "b", Role: access.RoleViewer, CreatedAt: now, UpdatedAt: now}, ev("user.created", "usr_b")); err != nil {
		t.Fatal(err)
	}
	h, err := s.EnsurePasskeyHandle(ctx, "usr_a", []byte("handle-1"))
	if err != nil || string(h) != "handle-1" {
		t.Fatalf("first handle = %q, %v", h, err)
	}
	if h, _ := s.EnsurePasskeyHandle(ctx, "usr_a", []byte("handle-2")); string(h) != "handle-1" {
		t.Errorf("handle changed to %q: one per user", h)
	}
	if _, err := s.EnsurePasskeyHandle(ctx, "usr_nobody", []byte("h")); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("handle of a missing user: %v", err)
	}

	pk := passkey("pk_1", "usr_a", 1)
	if err := s.CreatePasskey(ctx, pk, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePasskey(ctx, passkey("pk_2", "usr_b", 1), nil); !errors.Is(err, access.ErrConflict) {
		t.Errorf("the same credential ID for another user: %v, want ErrConflict", err)
	}
	got, err := s.Passkeys(ctx, "usr_a")
	if err != nil || len(got) != 1 || got[0].SignCount != 5 || len(got[0].Transports) != 2 || !got[0].BackupEligible || got[0].RPID != "collector.test" {
		t.Fatalf("passkeys = %+v, %v", got, err)
	}
	if m, _ := s.MFA(ctx, "usr_a"); m.Passkeys != 1 {
		t.Errorf("MFA counts %d passkeys", m.Passkeys)
	}

	if err := s.UsePasskey(ctx, pk.ID, 5, false, now); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("use with an unchanged counter: %v, want refused", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.UsePasskey(ctx, pk.ID, 6, true, now) }()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("two uses with counter 6: %v, %v; want exactly one to pass", errs[0], errs[1])
	}

	zero := passkey("pk_3", "usr_b", 3)
	zero.SignCount = 0
	if err := s.CreatePasskey(ctx, zero, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.UsePasskey(ctx, zero.ID, 0, false, now); err != nil {
			t.Errorf("use %d of a passkey without a counter: %v", i, err)
		}
	}

	db := raw(t, path)
	if _, err := db.Exec(`UPDATE passkeys SET user_id = 'usr_a' WHERE id = 'pk_3'`); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Passkeys(ctx, "usr_a"); len(got) != 1 || got[0].ID != pk.ID {
		t.Errorf("a passkey moved to another user in the database is listed: %+v", got)
	}

	if err := s.PutPasskeyCeremony(ctx, access.PasskeyCeremony{SessionHash: sess.Hash, UserID: "usr_a", Kind: access.CeremonyRegister,
		Data: []byte("{}"), ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetMFA(ctx, "usr_a", ev("user.mfa_reset", "usr_a")); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SELECT count(*) FROM passkeys WHERE id = 'pk_1'`, `SELECT count(*) FROM passkey_users WHERE user_id = 'usr_a'`,
		`SELECT count(*) FROM passkey_ceremonies`} {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil || n != 0 {
			t.Errorf("after a reset, %s = %d, %v", q, n, err)
		}
	}
	if err := s.DeletePasskey(ctx, "usr_a", "pk_1", ev("user.passkey_removed", "usr_a")); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("delete of a removed passkey: %v", err)
	}
}
