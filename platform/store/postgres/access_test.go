package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/postgres"
)

// These tests race two replicas (two stores on one database) for what
// must happen once. Each race is made certain rather than likely: a third
// transaction holds the lock the contenders need until every one of them
// waits on it (pg_stat_activity says so), then lets them all go at once.

// replicas opens two stores on one fresh database.
func replicas(t *testing.T) (a, b *postgres.Store) {
	t.Helper()
	url := pgtest.NewDB(t)
	return open(t, url, nil), open(t, url, nil)
}

func event(action, target string) store.Event {
	return store.Event{Time: time.Now(), Actor: "test", Action: action, Target: target}
}

func createUser(t *testing.T, s *postgres.Store, login string, role access.Role) access.User {
	t.Helper()
	now := time.Now()
	u := access.User{ID: access.NewID("usr"), Login: login, DisplayName: login, Role: role, PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateUser(ctx, u, event("user.created", u.ID)); err != nil {
		t.Fatal(err)
	}
	return u
}

// race holds a lock, taken by the statement hold in a transaction of its
// own, while the contenders run (alternating between the replicas); once
// all of them wait on a lock it lets go, and returns their errors.
func race(t *testing.T, hold string, holdArgs []any, stores []*postgres.Store, n int, contend func(s *postgres.Store, i int) error) []error {
	t.Helper()
	holder, err := stores[0].Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, hold, holdArgs...); err != nil {
		t.Fatalf("hold the lock: %v", err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = contend(stores[i%len(stores)], i) })
	}
	waitForWaiters(t, stores[0], n)
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return errs
}

// waitForWaiters returns once n sessions of the database wait on a lock.
func waitForWaiters(t *testing.T, s *postgres.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d contenders wait on the lock after 10 s", waiting, n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not ordering anything
	}
}

// wins counts the nil errors and fails t on an error other than refused.
func wins(t *testing.T, errs []error, refused error) int {
	t.Helper()
	n := 0
	for _, err := range errs {
		switch {
		case err == nil:
			n++
		case !errors.Is(err, refused):
			t.Errorf("contender: %v, want nil or %v", err, refused)
		}
	}
	return n
}

// A TOTP code replayed on two replicas at once passes once.
func TestUseTOTPStepConcurrent(t *testing.T) {
	a, b := replicas(t)
	u := createUser(t, a, "ann", access.RoleAdmin)
	if err := a.PutTOTP(ctx, u.ID, access.TOTPRecord{Sealed: []byte("seed"), LastStep: 100}, nil); err != nil {
		t.Fatal(err)
	}
	errs := race(t, `SELECT 1 FROM user_totp WHERE user_id = $1 FOR UPDATE`, []any{u.ID}, []*postgres.Store{a, b}, 4,
		func(s *postgres.Store, _ int) error { return s.UseTOTPStep(ctx, u.ID, 101) })
	if n := wins(t, errs, access.ErrSecondFactor); n != 1 {
		t.Errorf("step 101 used %d times at once, want once (%v)", n, errs)
	}
	if err := b.UseTOTPStep(ctx, u.ID, 101); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("step 101 again: %v, want ErrSecondFactor", err)
	}
	if err := b.UseTOTPStep(ctx, u.ID, 100); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("an older step: %v, want ErrSecondFactor", err)
	}
	if err := b.UseTOTPStep(ctx, u.ID, 102); err != nil {
		t.Errorf("the next step: %v", err)
	}
	if r, err := a.TOTP(ctx, u.ID); err != nil || r.LastStep != 102 || string(r.Sealed) != "seed" {
		t.Errorf("TOTP = %+v, %v; want last step 102", r, err)
	}
}

// A recovery code used on two replicas at once works once.
func TestUseRecoveryCodeConcurrent(t *testing.T) {
	a, b := replicas(t)
	u := createUser(t, a, "ann", access.RoleAdmin)
	if err := a.SetRecoveryCodes(ctx, u.ID, []string{"h1", "h2", "h3"}, nil); err != nil {
		t.Fatal(err)
	}
	errs := race(t, `SELECT 1 FROM user_recovery_codes WHERE user_id = $1 AND hash = 'h2' FOR UPDATE`, []any{u.ID},
		[]*postgres.Store{a, b}, 4, func(s *postgres.Store, _ int) error { return s.UseRecoveryCode(ctx, u.ID, "h2", time.Now()) })
	if n := wins(t, errs, access.ErrSecondFactor); n != 1 {
		t.Errorf("recovery code used %d times at once, want once (%v)", n, errs)
	}
	if m, err := b.MFA(ctx, u.ID); err != nil || m.RecoveryCodes != 2 {
		t.Errorf("MFA = %+v, %v; want 2 codes left", m, err)
	}
	if err := a.UseRecoveryCode(ctx, u.ID, "nope", time.Now()); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("an unknown code: %v", err)
	}
}

// Two replicas replacing a user's recovery codes at once leave one set.
func TestSetRecoveryCodesConcurrent(t *testing.T) {
	a, b := replicas(t)
	u := createUser(t, a, "ann", access.RoleAdmin)
	if err := a.SetRecoveryCodes(ctx, u.ID, []string{"old"}, nil); err != nil {
		t.Fatal(err)
	}
	race(t, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, []any{u.ID}, []*postgres.Store{a, b}, 2, func(s *postgres.Store, i int) error {
		err := s.SetRecoveryCodes(ctx, u.ID, []string{fmt.Sprint("set", i, "a"), fmt.Sprint("set", i, "b")}, nil)
		if err != nil {
			t.Error(err)
		}
		return err
	})
	if m, err := a.MFA(ctx, u.ID); err != nil || m.RecoveryCodes != 2 {
		t.Errorf("MFA = %+v, %v; want the 2 codes of one set", m, err)
	}
}

// Two replicas completing the setup at once (one token, two logins)
// create one admin; the other is told an admin exists.
func TestCreateFirstUserConcurrent(t *testing.T) {
	a, b := replicas(t)
	now := time.Now()
	if err := a.PutSetupToken(ctx, "tokhash", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The holder blocks the users table's writes: the first contender
	// waits at its insert, the others at the first-user lock.
	errs := race(t, `LOCK TABLE users IN EXCLUSIVE MODE`, nil, []*postgres.Store{a, b}, 4, func(s *postgres.Store, i int) error {
		login := fmt.Sprint("root", i)
		u := access.User{ID: access.NewID("usr"), Login: login, DisplayName: login, Role: access.RoleAdmin, PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
		return s.CreateFirstUser(ctx, u, "tokhash", now, event("user.created", u.ID))
	})
	if n := wins(t, errs, access.ErrConflict); n != 1 {
		t.Errorf("%d first users created at once, want 1 (%v)", n, errs)
	}
	if us, err := b.Users(ctx); err != nil || len(us) != 1 {
		t.Errorf("users = %+v, %v; want one", us, err)
	}
	if _, _, err := a.SetupToken(ctx); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("setup token after setup: %v, want burnt", err)
	}
	if res, err := a.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("audit = %+v, %v", res, err)
	}
}

// The setup token is checked (hash, expiry) and kept when refused.
func TestCreateFirstUserRefusals(t *testing.T) {
	s := open(t, pgtest.NewDB(t), nil)
	now := time.Now()
	u := access.User{ID: access.NewID("usr"), Login: "root", DisplayName: "root", Role: access.RoleAdmin, PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
	ev := event("user.created", u.ID)
	if err := s.CreateFirstUser(ctx, u, "tokhash", now, ev); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("no token: %v, want ErrUnauthenticated", err)
	}
	if err := s.PutSetupToken(ctx, "tokhash", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateFirstUser(ctx, u, "other", now, ev); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("wrong token: %v, want ErrUnauthenticated", err)
	}
	if err := s.CreateFirstUser(ctx, u, "tokhash", now.Add(time.Minute), ev); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("expired token: %v, want ErrUnauthenticated", err)
	}
	if h, exp, err := s.SetupToken(ctx); err != nil || h != "tokhash" || !exp.Equal(now.Add(time.Minute).UTC()) {
		t.Errorf("token after refusals = %q %v %v; want it kept", h, exp, err)
	}
	if err := s.CreateFirstUser(ctx, u, "tokhash", now, ev); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountAdmins(ctx); err != nil || n != 1 {
		t.Errorf("admins = %d, %v", n, err)
	}
}

// Failures recorded on two replicas at once both count, and a count past
// the window starts over.
func TestRecordFailureConcurrent(t *testing.T) {
	a, b := replicas(t)
	now := time.Now()
	window := time.Hour
	block := func(n int) time.Duration { return time.Duration(n) * time.Second }
	for range 3 {
		if _, err := a.RecordFailure(ctx, "login:ann", now, window, block); err != nil {
			t.Fatal(err)
		}
	}
	errs := race(t, `SELECT 1 FROM login_throttles WHERE key = 'login:ann' FOR UPDATE`, nil, []*postgres.Store{a, b}, 2,
		func(s *postgres.Store, i int) error {
			_, err := s.RecordFailure(ctx, "login:ann", now.Add(time.Duration(i+1)*time.Second), window, block)
			return err
		})
	if wins(t, errs, nil) != 2 {
		t.Fatalf("record failure: %v", errs)
	}
	ts, err := b.Throttles(ctx, "login:ann", "login:nobody")
	if err != nil || len(ts) != 1 || ts[0].Failures != 5 {
		t.Fatalf("throttles = %+v, %v; want 5 failures", ts, err)
	}
	if want := ts[0].LastFailure.Add(5 * time.Second); !ts[0].BlockedUntil.Equal(want) {
		t.Errorf("blocked until %v, want %v (the fifth failure's wait)", ts[0].BlockedUntil, want)
	}
	later := now.Add(2 * time.Hour)
	got, err := a.RecordFailure(ctx, "login:ann", later, window, block)
	if err != nil || got.Failures != 1 || !got.LastFailure.Equal(later) {
		t.Errorf("after the window: %+v, %v; want 1 failure", got, err)
	}
}

// A passkey ceremony finished on two replicas at once is taken once.
func TestTakePasskeyCeremonyConcurrent(t *testing.T) {
	a, b := replicas(t)
	u := createUser(t, a, "ann", access.RoleAdmin)
	now := time.Now()
	sess := access.Session{Hash: "sess1", UserID: u.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), Stage: access.StageMFA, Method: "password"}
	if err := a.CreateSession(ctx, sess, nil); err != nil {
		t.Fatal(err)
	}
	c := access.PasskeyCeremony{SessionHash: "sess1", UserID: u.ID, Kind: access.CeremonyLogin, Data: []byte(`{"challenge":"x"}`), ExpiresAt: now.Add(time.Minute)}
	if err := a.PutPasskeyCeremony(ctx, c); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []access.PasskeyCeremony
	errs := race(t, `SELECT 1 FROM passkey_ceremonies WHERE session_hash = 'sess1' FOR UPDATE`, nil, []*postgres.Store{a, b}, 4,
		func(s *postgres.Store, _ int) error {
			c, err := s.TakePasskeyCeremony(ctx, "sess1", access.CeremonyLogin, now)
			if err == nil {
				mu.Lock()
				got = append(got, c)
				mu.Unlock()
			}
			return err
		})
	if n := wins(t, errs, access.ErrNotFound); n != 1 {
		t.Fatalf("ceremony taken %d times, want once (%v)", n, errs)
	}
	if g := got[0]; g.UserID != u.ID || string(g.Data) != string(c.Data) || !g.ExpiresAt.Equal(c.ExpiresAt) {
		t.Errorf("ceremony = %+v, want %+v", g, c)
	}
	// A ceremony needs a live session; an expired one is not returned.
	c.SessionHash = "gone"
	if err := a.PutPasskeyCeremony(ctx, c); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("ceremony of no session: %v, want ErrUnauthenticated", err)
	}
	c.SessionHash = "sess1"
	if err := a.PutPasskeyCeremony(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TakePasskeyCeremony(ctx, "sess1", access.CeremonyLogin, c.ExpiresAt); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("expired ceremony: %v, want ErrNotFound", err)
	}
}

// A single sign-on callback replayed on two replicas at once signs in once.
func TestUseSSOFlowConcurrent(t *testing.T) {
	a, b := replicas(t)
	now := time.Now()
	// The holder inserts the same flow, uncommitted: the contenders wait
	// on its unique index entry until it rolls back.
	errs := race(t, `INSERT INTO sso_used_flows(hash, expires_at) VALUES ('flow1', 1)`, nil, []*postgres.Store{a, b}, 4,
		func(s *postgres.Store, _ int) error { return s.UseSSOFlow(ctx, "flow1", now.Add(time.Minute), now) })
	if n := wins(t, errs, access.ErrConflict); n != 1 {
		t.Errorf("flow used %d times at once, want once (%v)", n, errs)
	}
	// Once expired, the record goes and the hash could be used again.
	later := now.Add(2 * time.Minute)
	if err := a.UseSSOFlow(ctx, "flow1", later.Add(time.Minute), later); err != nil {
		t.Errorf("flow after its record expired: %v", err)
	}
}

// Two polls of an approved device grant at once get one token; a grant
// is approved once.
func TestDeviceGrantConcurrent(t *testing.T) {
	a, b := replicas(t)
	u := createUser(t, a, "ann", access.RoleOperator)
	now := time.Now()
	g := access.DeviceGrant{CodeHash: "code1", UserCode: "BCDF-GHJK", CreatedAt: now, ExpiresAt: now.Add(access.DeviceTTL), Source: "192.0.2.1"}
	if err := a.PutDeviceGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := b.PutDeviceGrant(ctx, access.DeviceGrant{CodeHash: "code2", UserCode: g.UserCode, CreatedAt: now, ExpiresAt: g.ExpiresAt}); !errors.Is(err, access.ErrConflict) {
		t.Errorf("a user code taken: %v, want ErrConflict", err)
	}
	if err := b.ConsumeDevice(ctx, "code1", now); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("consume before approval: %v, want ErrNotFound", err)
	}
	errs := race(t, `SELECT 1 FROM device_grants WHERE code_hash = 'code1' FOR UPDATE`, nil, []*postgres.Store{a, b}, 2,
		func(s *postgres.Store, _ int) error {
			return s.ApproveDevice(ctx, g.UserCode, u.ID, now, event("device.approved", u.ID))
		})
	if n := wins(t, errs, access.ErrNotFound); n != 1 {
		t.Errorf("grant approved %d times, want once (%v)", n, errs)
	}
	errs = race(t, `SELECT 1 FROM device_grants WHERE code_hash = 'code1' FOR UPDATE`, nil, []*postgres.Store{a, b}, 4,
		func(s *postgres.Store, _ int) error { return s.ConsumeDevice(ctx, "code1", now) })
	if n := wins(t, errs, access.ErrNotFound); n != 1 {
		t.Errorf("grant consumed %d times, want once (%v)", n, errs)
	}
	got, err := b.DeviceGrant(ctx, "code1")
	if err != nil || got.UserID != u.ID || got.ApprovedAt.IsZero() || got.ConsumedAt.IsZero() || got.Source != g.Source {
		t.Errorf("grant = %+v, %v", got, err)
	}
}

// A passkey counter checked on two replicas at once advances once.
func TestUsePasskeyConcurrent(t *testing.T) {
	a, b := replicas(t)
	u := createUser(t, a, "ann", access.RoleOperator)
	pk := access.Passkey{ID: "pk_1", UserID: u.ID, RPID: "collector.test", CredentialID: []byte{1, 2, 3}, PublicKey: []byte{4, 5, 6},
		SignCount: 7, Transports: []string{"usb", "nfc"}, BackupEligible: true, Name: "key", CreatedAt: time.Now()}
	if err := a.CreatePasskey(ctx, pk, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.CreatePasskey(ctx, pk, nil); !errors.Is(err, access.ErrConflict) {
		t.Errorf("the same passkey twice: %v, want ErrConflict", err)
	}
	errs := race(t, `SELECT 1 FROM passkeys WHERE id = 'pk_1' FOR UPDATE`, nil, []*postgres.Store{a, b}, 4,
		func(s *postgres.Store, _ int) error { return s.UsePasskey(ctx, "pk_1", 8, true, time.Now()) })
	if n := wins(t, errs, access.ErrSecondFactor); n != 1 {
		t.Errorf("counter 8 accepted %d times, want once (%v)", n, errs)
	}
	pks, err := b.Passkeys(ctx, u.ID)
	if err != nil || len(pks) != 1 || pks[0].SignCount != 8 || !pks[0].BackupState || !pks[0].BackupEligible ||
		len(pks[0].Transports) != 2 || pks[0].LastUsedAt.IsZero() {
		t.Errorf("passkeys = %+v, %v", pks, err)
	}
}

// Of two replicas creating a user's passkey handle at once, both answer
// the one stored.
func TestEnsurePasskeyHandleConcurrent(t *testing.T) {
	a, b := replicas(t)
	u := createUser(t, a, "ann", access.RoleOperator)
	handles := make([][]byte, 2)
	race(t, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, []any{u.ID}, []*postgres.Store{a, b}, 2, func(s *postgres.Store, i int) error {
		h, err := s.EnsurePasskeyHandle(ctx, u.ID, []byte{byte(i + 1)})
		if err != nil {
			t.Error(err)
		}
		handles[i] = h
		return err
	})
	stored, err := a.PasskeyHandle(ctx, u.ID)
	if err != nil || len(stored) != 1 || string(handles[0]) != string(stored) || string(handles[1]) != string(stored) {
		t.Errorf("handles %v %v, stored %v (%v): want one handle", handles[0], handles[1], stored, err)
	}
	if _, err := a.EnsurePasskeyHandle(ctx, "usr_nobody", []byte{9}); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("handle of no user: %v, want ErrNotFound", err)
	}
}
