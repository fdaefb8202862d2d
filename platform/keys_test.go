package platform_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/platformtest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/postgres"
)

// rotationFixture is what a rotation must keep working: a collector with
// an integration, and a user who signs in with TOTP (recovery codes too).
type rotationFixture struct {
	keyFile string
	c       *platformtest.Collector
	in      *api.Integration
	login   string
	pw      string
	secret  string
	codes   []string
}

// keyFileConfig gives the platform the key file and a public URL that
// survives restarts (a collector's assertions name it).
func keyFileConfig(keyFile string) func(*platform.Config) {
	return func(c *platform.Config) {
		c.DataKeyFile = keyFile
		c.PublicURL = "https://platform.test"
	}
}

func newRotationFixture(t *testing.T, e *platformtest.Env, keyFile string) *rotationFixture {
	t.Helper()
	f := &rotationFixture{keyFile: keyFile, login: "root"}
	f.c = e.EnrollNew(t, "a")
	f.in = newJobIntegration(t, e, "ldap", f.c.ID)
	f.pw = createUser(t, e, f.login, access.RoleAdmin)
	b := newBrowser(t, e)
	var in api.SignInResponse
	if st, code := b.do("POST", api.PathLogin, api.LoginRequest{Login: f.login, Password: f.pw}, &in); st != 200 || in.Stage != access.StageEnroll {
		t.Fatalf("sign-in: %d %s, stage %q", st, code, in.Stage)
	}
	var enr api.TOTPEnrollment
	if st, code := b.do("POST", api.PathTOTPBegin, nil, &enr); st != 200 {
		t.Fatalf("totp begin: %d %s", st, code)
	}
	code, _ := totp.GenerateCode(enr.Secret, e.Clock.Now())
	var codes api.RecoveryCodes
	if st, c := b.do("POST", api.PathTOTPConfirm, map[string]string{"code": code}, &codes); st != 200 || len(codes.Codes) == 0 {
		t.Fatalf("totp confirm: %d %s", st, c)
	}
	f.secret, f.codes = enr.Secret, codes.Codes
	return f
}

// reconnect points the fixture's collector at e (a restart has a new port).
func (f *rotationFixture) reconnect(e *platformtest.Env) {
	f.c.Client = api.NewCollectorClient(e.URL, f.c.ID, f.c.Key, f.c.Enrolled.Audience, e.HTTP)
}

// check: the collector authenticates with a fresh assertion, its job
// carries the integration's secret (the config opened), the user signs in
// with TOTP and with a recovery code, the audit chain verifies.
func (f *rotationFixture) check(t *testing.T, e *platformtest.Env, when string) {
	t.Helper()
	f.reconnect(e)
	if _, err := f.c.Client.ExchangeAssertion(ctx); err != nil {
		t.Fatalf("%s: collector assertion → access token: %v", when, err)
	}
	if err := f.c.Heartbeat(ctx); err != nil {
		t.Errorf("%s: heartbeat: %v", when, err)
	}
	l := runAndLease(t, e, f.c, f.in.ID)
	if got := f.jobSecret(t, l); got != secretValue {
		t.Errorf("%s: the job's config has password %q", when, got)
	}
	if err := f.c.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID}); err != nil {
		t.Fatalf("%s: finish: %v", when, err)
	}
	if _, err := e.Admin.Integration(ctx, f.in.ID); err != nil {
		t.Errorf("%s: integration view: %v", when, err)
	}
	e.Clock.Advance(time.Minute) // a TOTP step is used once
	b := newBrowser(t, e)
	var in api.SignInResponse
	if st, code := b.do("POST", api.PathLogin, api.LoginRequest{Login: f.login, Password: f.pw}, &in); st != 200 || in.Stage != access.StageMFA {
		t.Fatalf("%s: sign-in: %d %s, stage %q", when, st, code, in.Stage)
	}
	code, _ := totp.GenerateCode(f.secret, e.Clock.Now())
	if st, c := b.do("POST", api.PathMFATOTP, map[string]string{"code": code}, nil); st != 200 {
		t.Errorf("%s: TOTP: %d %s", when, st, c)
	}
	if len(f.codes) == 0 {
		t.Fatalf("%s: no recovery code left to check", when)
	}
	b2 := newBrowser(t, e)
	b2.do("POST", api.PathLogin, api.LoginRequest{Login: f.login, Password: f.pw}, nil)
	rc := f.codes[0]
	f.codes = f.codes[1:]
	if st, c := b2.do("POST", api.PathMFARecovery, map[string]string{"code": rc}, nil); st != 200 {
		t.Errorf("%s: recovery code issued before the rotation: %d %s", when, st, c)
	}
	if v, err := e.Admin.VerifyAudit(ctx); err != nil || !v.OK {
		t.Errorf("%s: audit verify: %+v, %v", when, v, err)
	}
}

func (f *rotationFixture) jobSecret(t *testing.T, l *api.Lease) string {
	t.Helper()
	j, err := crypto.OpenEnvelope(l.Envelope, f.c.ID, l.JobID, f.c.HPKE, f.c.Enrolled.PlatformSigningKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]string
	json.Unmarshal(j.Config, &cfg)
	return cfg["password"]
}

func keyIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.ParseDataKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, crypto.DataKeyID(k))
	}
	return ids
}

func rotate(t *testing.T, st store.Store, keys *crypto.KeyRing) platform.Rotation {
	t.Helper()
	rot, err := platform.RotateDataKey(ctx, st, keys, platform.RotateOptions{Actor: "test", Batch: 3})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return rot
}

func sealedCount(rep platform.KeyReport, kind store.SealedKind) platform.SealedCount {
	for _, s := range rep.Sealed {
		if s.Kind == kind {
			return s
		}
	}
	return platform.SealedCount{}
}

// TestDataKeyRotation walks the procedure of docs/auth.md on one platform:
// add a key (reads only), promote it, rotate while a job runs, remove the
// old key. Everything keeps working at each step; a second rotation does
// nothing; a value left under the removed key is reported, not lost
// silently.
func TestDataKeyRotation(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "data-keys")
	old, err := platform.AddDataKey(keyFile, false)
	if err != nil {
		t.Fatal(err)
	}
	e := platformtest.Start(t, keyFileConfig(keyFile))
	f := newRotationFixture(t, e, keyFile)
	f.check(t, e, "before")

	fresh, err := platform.AddDataKey(keyFile, false)
	if err != nil {
		t.Fatal(err)
	}
	if ids := keyIDs(t, keyFile); len(ids) != 2 || ids[0] != old {
		t.Fatalf("after add: keys %v, want %s still current", ids, old)
	}
	e = e.Restart(t)
	f.check(t, e, "new key added")
	if err := platform.PromoteDataKey(keyFile, fresh); err != nil {
		t.Fatal(err)
	}
	e = e.Restart(t)
	f.check(t, e, "new key promoted")

	// A job in flight across the rotation.
	f.reconnect(e)
	l := runAndLease(t, e, f.c, f.in.ID)
	dd, st := platformtest.OpenStore(t, e.Config)
	before, err := platform.DataKeyStatus(ctx, st, dd.Keys)
	if err != nil {
		t.Fatal(err)
	}
	if before.Keys[0] != fresh || before.Behind() == 0 {
		t.Fatalf("status before the rotation: keys %v, %d behind", before.Keys, before.Behind())
	}
	rot := rotate(t, st, dd.Keys)
	for _, kind := range []store.SealedKind{store.SealedIntegrationConfigs, store.SealedTOTPSecrets, store.SealedAccessKey} {
		if c := sealedCount(rot.Done, kind); c.Resealed != 1 || len(c.Failed) != 0 {
			t.Errorf("%s: %+v, want one re-sealed", kind, c)
		}
	}
	if n := rot.After.Behind(); n != 0 {
		t.Errorf("after the rotation %d values are behind: %+v", n, rot.After)
	}
	if res, err := f.c.Client.UploadRecords(ctx, l.JobID, l.LeaseID, 1, entities("u1", "u2")); err != nil || res.Accepted != 2 {
		t.Fatalf("records after the rotation: %+v, %v", res, err)
	}
	if err := f.c.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, Records: 2}); err != nil {
		t.Fatal(err)
	}
	if j := showJob(t, e, l.JobID); j.State != api.JobSucceeded || j.Records != 2 {
		t.Errorf("the job leased before the rotation: %s with %d records", j.State, j.Records)
	}
	wantKeys(t, "entities", itemKeys(t, e, api.KindEntity, f.in.ID, false), "u1", "u2")
	if got := auditActions(t, e, "data_key.rotated"); len(got) != 1 || got[0].Target != fresh {
		t.Errorf("audit data_key.rotated = %+v", got)
	}
	// A second run does nothing, not even an audit entry.
	n := e.AuditLen(t)
	if again := rotate(t, st, dd.Keys); again.Done.Moved() != 0 || again.After.Behind() != 0 {
		t.Errorf("second rotation moved %d, %d behind", again.Done.Moved(), again.After.Behind())
	}
	if e.AuditLen(t) != n {
		t.Error("a rotation with nothing to do wrote to the audit log")
	}
	f.check(t, e, "rotated")
	st.Close()

	if err := platform.RemoveDataKey(keyFile, old); err != nil {
		t.Fatal(err)
	}
	e = e.Restart(t)
	f.check(t, e, "old key removed")
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.ParseDataKeyFile(b)
	if err != nil || len(keys) != 1 {
		t.Fatalf("key file after remove: %d keys, %v", len(keys), err)
	}
	in, err := e.Store.Integration(ctx, f.in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := crypto.OpenAtRest(keys[0], in.SealedConfig, platform.ConfigAAD(in)); err != nil || !strings.Contains(string(plain), secretValue) {
		t.Errorf("config opened with the file's one key: %v", err)
	}

	// A value under a key no longer in the ring: reported by status and
	// rotate, which leave it as it is.
	dd, st = platformtest.OpenStore(t, e.Config)
	defer st.Close()
	gone, _ := crypto.NewDataKey()
	if in.SealedConfig, err = crypto.SealAtRest(gone, []byte(`{}`), platform.ConfigAAD(in)); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateIntegration(ctx, in, store.Event{Time: time.Now(), Actor: "test", Action: "integration.updated", Target: in.ID}); err != nil {
		t.Fatal(err)
	}
	status, err := platform.DataKeyStatus(ctx, st, dd.Keys)
	if err != nil || sealedCount(status, store.SealedIntegrationConfigs).NotInRing != 1 || status.Behind() != 1 {
		t.Errorf("status with a config under a removed key: %+v, %v", status, err)
	}
	rot = rotate(t, st, dd.Keys)
	if c := sealedCount(rot.Done, store.SealedIntegrationConfigs); len(c.Failed) != 1 || c.Failed[0] != in.ID || rot.After.Behind() != 1 {
		t.Errorf("rotation with a config under a removed key: %+v, %d behind", c, rot.After.Behind())
	}
	if _, err := dd.Keys.Open(in.SealedConfig, platform.ConfigAAD(in)); !errors.Is(err, crypto.ErrDataKeyNotInRing) ||
		!strings.Contains(err.Error(), crypto.DataKeyID(gone)) {
		t.Errorf("opening it: %v, want ErrDataKeyNotInRing naming key %s", err, crypto.DataKeyID(gone))
	}
}

// TestDataKeyAddCreatesAndConverts: `keys add` creates a missing file with
// one current key, converts the older raw form, and refuses a file others
// may read.
func TestDataKeyAddCreatesAndConverts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	id, err := platform.AddDataKey(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created key file: %v, %v", fi.Mode(), err)
	}
	if ids := keyIDs(t, path); len(ids) != 1 || ids[0] != id {
		t.Errorf("created file: keys %v, want [%s]", ids, id)
	}
	raw := filepath.Join(dir, "raw")
	legacy, _ := crypto.NewDataKey()
	os.WriteFile(raw, legacy, 0o600)
	added, err := platform.AddDataKey(raw, true)
	if err != nil {
		t.Fatal(err)
	}
	if ids := keyIDs(t, raw); len(ids) != 2 || ids[0] != added || ids[1] != crypto.DataKeyID(legacy) {
		t.Errorf("converted raw file: keys %v, want [%s %s]", ids, added, crypto.DataKeyID(legacy))
	}
	if err := platform.RemoveDataKey(raw, added); err == nil {
		t.Error("removed the current key")
	}
	os.Chmod(raw, 0o644)
	if _, err := platform.AddDataKey(raw, false); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key file: %v, want a refusal", err)
	}
}

// TestDataKeyRotationReplicas walks the procedure with two replicas on one
// PostgreSQL database, restarting them one at a time: at each step one
// runs with the new file and the other with the old, and each opens what
// the other seals.
func TestDataKeyRotationReplicas(t *testing.T) {
	url := postgresURL(t)
	keyFile := filepath.Join(t.TempDir(), "data-keys")
	old, err := platform.AddDataKey(keyFile, false)
	if err != nil {
		t.Fatal(err)
	}
	a := platformtest.Start(t, keyFileConfig(keyFile), func(c *platform.Config) { c.Database = url })
	b := platformtest.StartReplica(t, a)
	f := newRotationFixture(t, a, keyFile)

	// Each step: change the file, restart a and check it, check b (still
	// on the old file's ring: it reads what a wrote), restart b and check
	// it. (Each check burns one of the user's ten recovery codes.)
	step := func(name string, change func() error) {
		t.Helper()
		if err := change(); err != nil {
			t.Fatal(err)
		}
		a = a.Restart(t)
		f.check(t, a, name+": a restarted")
		f.check(t, b, name+": b not yet")
		b = b.Restart(t)
		f.check(t, b, name+": b restarted")
	}
	var fresh string
	step("add", func() (err error) { fresh, err = platform.AddDataKey(keyFile, false); return err })
	step("promote", func() error { return platform.PromoteDataKey(keyFile, fresh) })

	dd, err := platform.OpenDataDir(a.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Open(ctx, url, postgres.Options{IntegrityKey: dd.IntegrityKey, PreviousIntegrityKeys: dd.PreviousIntegrityKeys,
		Queue: a.Config.QueueConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if rot := rotate(t, st, dd.Keys); rot.Done.Moved() == 0 || rot.After.Behind() != 0 {
		t.Errorf("rotation moved %d, %d behind", rot.Done.Moved(), rot.After.Behind())
	}
	f.check(t, b, "rotated")
	step("remove", func() error { return platform.RemoveDataKey(keyFile, old) })
}
