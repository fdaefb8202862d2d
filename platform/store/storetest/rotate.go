package storetest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

// RekeyStore is a store with its accounts: what a data key rotation walks.
type RekeyStore interface {
	store.Store
	access.Store
}

// OpenRing opens the suite's database (the same one at every call) with
// the integrity keys given, current first.
type OpenRing func(t *testing.T, keys ...[]byte) RekeyStore

// RunRekey is the data key rotation suite (store.Rekeyer): a row of every
// MAC'd kind and a value of every sealed kind is written under an old
// key; the database is opened with a ring of a new key and the old one,
// the rows still read, rotation moves them all to the new key, a second
// rotation finds nothing to do, and the database then works with the new
// key alone. A row left under the old key fails its check there.
func RunRekey(t *testing.T, open OpenRing) {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	now := time.Now()
	s := open(t, oldKey)
	sealed := writeEveryKind(t, s, now)
	wantRows := countRows(t, s)

	ring := open(t, newKey, oldKey)
	checkReads(t, ring, now)
	for _, kind := range store.MACKinds {
		c, err := ring.CountMACKeys(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		if c.ByKey[0] != 0 || c.ByKey[1] != wantRows[kind] || c.Unverified != 0 {
			t.Errorf("%s before rotation: %+v, want %d under the old key", kind, c, wantRows[kind])
		}
	}
	for _, kind := range store.MACKinds {
		c, err := ring.RekeyMACs(ctx, kind, 2) // small batches: the cursor is exercised
		if err != nil {
			t.Fatal(err)
		}
		if c.Rekeyed != wantRows[kind] {
			t.Errorf("%s: rekeyed %d rows, want %d", kind, c.Rekeyed, wantRows[kind])
		}
	}
	for _, kind := range store.MACKinds {
		c, err := ring.RekeyMACs(ctx, kind, 2)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rekeyed != 0 || c.ByKey[0] != wantRows[kind] || c.ByKey[1] != 0 {
			t.Errorf("%s, second rotation: %+v, want nothing to do", kind, c)
		}
	}
	resealEveryKind(t, ring, sealed)

	// The old key gone: everything still reads, and the audit chain
	// verifies with its MACs under the new key.
	fresh := open(t, newKey)
	checkReads(t, fresh, now)
	if err := fresh.Enroll(ctx, store.Enrollment{CollectorID: "c2", TokenHash: "h-c2", IdentityKey: []byte("k"), HPKEKey: []byte("h"), Now: now},
		ev("collector.enrolled", "c2")); err != nil {
		t.Errorf("enroll with a token issued under the old key: %v", err)
	}
	// A row written under the old key after the rotation (a replica not
	// restarted with the new key file) fails its check with the new key
	// alone, and rotation leaves it as it is.
	if err := open(t, oldKey, newKey).PutSetting(ctx, "late", "v", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Setting(ctx, "late"); !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("setting under a removed key: %v, want ErrIntegrity", err)
	}
	c, err := fresh.RekeyMACs(ctx, store.MACRowsSettings, 100)
	if err != nil || c.Unverified != 1 || c.Rekeyed != 0 {
		t.Errorf("rotation with a row under a removed key: %+v, %v; want it unverified and left", c, err)
	}
}

// countRows is how many rows of each kind writeEveryKind wrote, audit
// entries counted from the store.
func countRows(t *testing.T, s RekeyStore) map[store.MACKind]int {
	t.Helper()
	es, err := s.AuditEntries(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// Settings: "integrity" (SQLite's marker, if any) is counted by the
	// store itself.
	c, err := s.CountMACKeys(ctx, store.MACRowsSettings)
	if err != nil {
		t.Fatal(err)
	}
	return map[store.MACKind]int{
		store.MACRowsSettings: c.ByKey[0], store.MACRowsCollectorKeys: 1, store.MACRowsCollectorPools: 2, store.MACRowsCollectorPrevious: 1,
		store.MACRowsEnrollmentTokens: 2, store.MACRowsAccessTokens: 1, store.MACRowsAudit: len(es), store.MACRowsUsers: 1,
		store.MACRowsSessions: 1, store.MACRowsAPITokens: 1, store.MACRowsPasskeys: 1, store.MACRowsPasskeyCeremonies: 1,
	}
}

// writeEveryKind writes a row of every MAC'd kind and a value of every
// sealed kind; it returns the sealed values by kind.
func writeEveryKind(t *testing.T, s RekeyStore, now time.Time) map[store.SealedKind]store.Sealed {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	collector(t, s, "c1")
	collector(t, s, "c2")
	k1, k2 := []byte("identity-key-1"), []byte("identity-key-2")
	must(s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "h-c1", IdentityKey: k1, HPKEKey: []byte("hpke"), Now: now}, ev("e", "c1")))
	must(s.SetCollectorPool(ctx, "c1", "p1", ev("collector.pool_set", "c1")))
	must(s.RotateCollectorKeys(ctx, store.KeyRotation{CollectorID: "c1", OldIdentityKey: k1, IdentityKey: k2, HPKEKey: []byte("hpke-2"),
		PreviousUntil: now.Add(time.Hour)}, ev("collector.keys_rotated", "c1")))
	must(s.IssueAccessToken(ctx, "j1", now.Add(time.Minute), store.AccessToken{Hash: "a1", CollectorID: "c1",
		ExpiresAt: now.Add(15 * time.Minute), KeyFingerprint: crypto.Fingerprint(k2)}, now))
	must(s.PutSetting(ctx, "metrics_token_hash", "abc", nil))
	u := access.User{ID: "u1", Login: "ada", DisplayName: "Ada", Role: access.RoleAdmin, PasswordHash: "$argon2id$x", CreatedAt: now, UpdatedAt: now}
	must(s.CreateUser(ctx, u, ev("user.created", "u1")))
	must(s.CreateSession(ctx, access.Session{Hash: "sess", UserID: "u1", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour),
		Stage: access.StageFull, MFAAt: now, Method: "password"}, nil))
	must(s.CreateToken(ctx, access.APIToken{ID: "t1", UserID: "u1", Name: "ci", Role: access.RoleViewer, Hash: "th", CreatedAt: now,
		ExpiresAt: now.Add(time.Hour)}, ev("token.created", "t1")))
	must(s.CreatePasskey(ctx, access.Passkey{ID: "pk1", UserID: "u1", RPID: "example.test", CredentialID: []byte("cred"),
		PublicKey: []byte("cose"), Name: "key", CreatedAt: now}, nil))
	must(s.PutPasskeyCeremony(ctx, access.PasskeyCeremony{SessionHash: "sess", UserID: "u1", Kind: access.CeremonyLogin,
		Data: []byte(`{}`), ExpiresAt: now.Add(5 * time.Minute)}))

	// Sealed values: the store keeps them as given (the platform seals).
	vals := map[store.SealedKind]store.Sealed{
		store.SealedIntegrationConfigs: {ID: "i1", Value: []byte("sealed-config")},
		store.SealedTOTPSecrets:        {ID: "u1", Value: []byte("sealed-totp")},
		store.SealedTOTPPending:        {ID: "u1", Value: []byte("sealed-pending")},
		store.SealedSSOSecret:          {ID: "sso_oidc", Value: []byte("sealed-sso")},
		store.SealedAccessKey:          {ID: store.SettingAccessKey, Value: []byte("sealed-access-key")},
	}
	must(s.CreateIntegration(ctx, store.Integration{ID: "i1", Name: "ldap", Image: "img", SealedConfig: vals[store.SealedIntegrationConfigs].Value,
		Interval: time.Hour, CollectorID: "c1", CreatedAt: now, UpdatedAt: now}, ev("integration.created", "i1")))
	must(s.PutTOTP(ctx, "u1", access.TOTPRecord{Sealed: vals[store.SealedTOTPSecrets].Value, Pending: vals[store.SealedTOTPPending].Value,
		LastStep: -1}, nil))
	must(s.PutSSOSettings(ctx, access.SSOSettings{Issuer: "https://idp.example.test", ClientID: "collector",
		SealedSecret: vals[store.SealedSSOSecret].Value, GroupRoles: map[string]access.Role{"ops": access.RoleAdmin}}, ev("sso.settings_changed", "sso")))
	must(s.PutSetting(ctx, store.SettingAccessKey, base64.StdEncoding.EncodeToString(vals[store.SealedAccessKey].Value), nil))
	return vals
}

// checkReads reads a row of every kind through the store's own checks.
func checkReads(t *testing.T, s RekeyStore, now time.Time) {
	t.Helper()
	if c, err := s.Collector(ctx, "c1"); err != nil || c.Tampered || c.PoolTampered || c.Pool != "p1" {
		t.Errorf("collector: %+v, %v; want it in pool p1, unflagged", c, err)
	}
	if _, err := s.PreviousCollectorKey(ctx, "c1"); err != nil {
		t.Errorf("previous collector key: %v", err)
	}
	if id, err := s.AccessTokenCollector(ctx, "a1", now); err != nil || id != "c1" {
		t.Errorf("access token: %q, %v", id, err)
	}
	if v, err := s.Setting(ctx, "metrics_token_hash"); err != nil || v != "abc" {
		t.Errorf("setting: %q, %v", v, err)
	}
	if _, err := s.SSOSettings(ctx); err != nil {
		t.Errorf("sso settings: %v", err)
	}
	if u, err := s.User(ctx, "u1"); err != nil || u.Role != access.RoleAdmin {
		t.Errorf("user: %+v, %v", u, err)
	}
	if x, err := s.SessionByHash(ctx, "sess"); err != nil || x.Stage != access.StageFull {
		t.Errorf("session: %+v, %v", x, err)
	}
	if _, err := s.TokenByHash(ctx, "th"); err != nil {
		t.Errorf("api token: %v", err)
	}
	if pks, err := s.Passkeys(ctx, "u1"); err != nil || len(pks) != 1 {
		t.Errorf("passkeys: %d, %v", len(pks), err)
	}
	if r, err := s.VerifyAudit(ctx); err != nil || !r.OK {
		t.Errorf("audit verify: %+v, %v", r, err)
	}
}

// resealEveryKind lists the sealed values of every kind and swaps each
// for a new one: a swap from a value that is not the stored one fails.
func resealEveryKind(t *testing.T, s RekeyStore, want map[store.SealedKind]store.Sealed) {
	t.Helper()
	for _, kind := range store.SealedKinds {
		w := want[kind]
		got, err := s.SealedValues(ctx, kind, "", 10)
		if err != nil || len(got) != 1 || got[0].ID != w.ID || !bytes.Equal(got[0].Value, w.Value) {
			t.Fatalf("%s: %+v, %v; want %+v", kind, got, err, w)
		}
		if more, err := s.SealedValues(ctx, kind, w.ID, 10); err != nil || len(more) != 0 {
			t.Errorf("%s after %q: %+v, %v; want none", kind, w.ID, more, err)
		}
		if ok, err := s.Reseal(ctx, kind, w.ID, []byte("not it"), []byte("x")); err != nil || ok {
			t.Errorf("%s: swap from a stale value = %v, %v; want false", kind, ok, err)
		}
		v := append([]byte("new-"), w.Value...)
		if ok, err := s.Reseal(ctx, kind, w.ID, w.Value, v); err != nil || !ok {
			t.Fatalf("%s: swap = %v, %v", kind, ok, err)
		}
		if got, _ := s.SealedValues(ctx, kind, "", 10); len(got) != 1 || !bytes.Equal(got[0].Value, v) {
			t.Errorf("%s after the swap: %+v", kind, got)
		}
	}
	// The settings that hold sealed values were re-MAC'd with them.
	if c, err := s.CountMACKeys(ctx, store.MACRowsSettings); err != nil || c.ByKey[1] != 0 || c.Unverified != 0 {
		t.Errorf("settings after the swaps: %+v, %v", c, err)
	}
	if c, err := s.SSOSettings(ctx); err != nil || c.ClientID != "collector" || c.GroupRoles["ops"] != access.RoleAdmin {
		t.Errorf("sso settings after the swap: %+v, %v", c, err)
	}
}
