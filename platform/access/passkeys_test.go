package access_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/collectorhq/collector/platform/access"
)

// The main passkey test is the browser one (platform/passkeys_browser_test.go:
// real Chromium, a CDP virtual authenticator). These drive the ceremonies
// with softKey, a software authenticator that signs as a real one does
// (ECDSA P-256, "none" attestation), to reach what a browser will not do:
// answer with another origin, another user's key, a counter that goes
// backwards, a replay.

const (
	rpHost   = "collector.test"
	rpOrigin = "https://collector.test:8443"
)

var b64 = base64.RawURLEncoding

// softKey is one credential of a software authenticator.
type softKey struct {
	id     []byte
	key    *ecdsa.PrivateKey
	handle []byte
	count  uint32
	origin string // the origin it claims in client data
	rpID   string // the RP ID it hashes into the authenticator data
}

func newSoftKey(t *testing.T) *softKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &softKey{id: id, key: k, origin: rpOrigin, rpID: rpHost}
}

func (k *softKey) authData(flags protocol.AuthenticatorFlags, attested []byte) []byte {
	rp := sha256.Sum256([]byte(k.rpID))
	out := append(rp[:], byte(flags))
	out = binary.BigEndian.AppendUint32(out, k.count)
	return append(out, attested...)
}

func (k *softKey) clientData(typ string, challenge []byte) []byte {
	raw, _ := json.Marshal(map[string]any{"type": typ, "challenge": b64.EncodeToString(challenge), "origin": k.origin, "crossOrigin": false})
	return raw
}

// create answers navigator.credentials.create with options.
func (k *softKey) create(t *testing.T, options *protocol.CredentialCreation) []byte {
	t.Helper()
	k.handle = options.Response.User.ID.(protocol.URLEncodedBase64)
	pub, err := k.key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	xy := pub.Bytes()[1:]
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256), XCoord: xy[:32], YCoord: xy[32:]})
	if err != nil {
		t.Fatal(err)
	}
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{},
		"authData": k.authData(protocol.FlagUserPresent|protocol.FlagUserVerified|protocol.FlagAttestedCredentialData, attested)})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(k.clientData("webauthn.create", options.Response.Challenge)),
			"attestationObject": b64.EncodeToString(obj), "transports": []string{"internal"}},
		"clientExtensionResults": map[string]any{}})
	return raw
}

// get answers navigator.credentials.get with options (it signs whatever
// it is asked: the server must check whose key it is).
func (k *softKey) get(t *testing.T, options *protocol.CredentialAssertion) []byte {
	t.Helper()
	k.count++
	return k.sign(t, options.Response.Challenge)
}

func (k *softKey) sign(t *testing.T, challenge []byte) []byte {
	t.Helper()
	cd := k.clientData("webauthn.get", challenge)
	ad := k.authData(protocol.FlagUserPresent|protocol.FlagUserVerified, nil)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(k.handle)},
		"clientExtensionResults": map[string]any{}})
	return raw
}

func newPasskeys(t *testing.T, e *env) *access.Passkeys {
	t.Helper()
	u, _ := url.Parse(rpOrigin)
	pk, err := access.NewPasskeys(e.svc, access.PasskeyConfig{PublicURL: u})
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

// signIn signs login in with the password and returns its principal.
func (e *env) signIn(t *testing.T, login string) (*access.Principal, string) {
	t.Helper()
	in, err := e.svc.SignIn(ctx, login, goodPassword, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	return e.principal(t, in.Token), in.Token
}

func (e *env) principal(t *testing.T, cookie string) *access.Principal {
	t.Helper()
	p, err := e.svc.Authenticate(ctx, request(cookie, ""))
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return p
}

// enroll registers k for p's session and returns the result.
func enroll(t *testing.T, pk *access.Passkeys, p *access.Principal, k *softKey) *access.PasskeyAdded {
	t.Helper()
	opts, err := pk.BeginRegistration(ctx, p)
	if err != nil {
		t.Fatalf("begin registration: %v", err)
	}
	added, err := pk.FinishRegistration(ctx, p, "", k.create(t, opts))
	if err != nil {
		t.Fatalf("finish registration: %v", err)
	}
	return added
}

// login verifies k for p's session.
func login(t *testing.T, pk *access.Passkeys, p *access.Principal, k *softKey) (string, error) {
	t.Helper()
	opts, err := pk.BeginLogin(ctx, p)
	if err != nil {
		t.Fatalf("begin login: %v", err)
	}
	return pk.FinishLogin(ctx, p, k.get(t, opts))
}

// audits returns the details of the audit events of action.
func (e *env) audits(t *testing.T, action string) []map[string]any {
	t.Helper()
	es, err := e.st.AuditEntries(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, en := range es {
		if en.Action == action {
			var d map[string]any
			json.Unmarshal([]byte(en.Details), &d)
			out = append(out, d)
		}
	}
	return out
}

// TestPasskeyEnrolThenSecondFactor: an admin enrols a passkey as its first
// factor (recovery codes, a rotated full session), then signs in with it;
// the user handle is random, not the user ID.
func TestPasskeyEnrolThenSecondFactor(t *testing.T) { eachBackend(t, testPasskeyEnrolThenSecondFactor) }

func testPasskeyEnrolThenSecondFactor(t *testing.T, b backend) {
	e := newEnv(t, b)
	pk := newPasskeys(t, e)
	u := e.user(t, "root", access.RoleAdmin)
	p, enrolToken := e.signIn(t, "root")
	if p.Session.Stage != access.StageEnroll {
		t.Fatalf("stage %q, want enroll", p.Session.Stage)
	}
	opts, err := pk.BeginRegistration(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	handle := []byte(opts.Response.User.ID.(protocol.URLEncodedBase64))
	if opts.Response.RelyingParty.ID != rpHost || len(handle) != 32 || strings.Contains(string(handle), u.ID) {
		t.Errorf("options: rp %q, user handle %x (user %s): want the URL's host and 32 random bytes", opts.Response.RelyingParty.ID, handle, u.ID)
	}
	k := newSoftKey(t)
	added, err := pk.FinishRegistration(ctx, p, "laptop", k.create(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	if len(added.RecoveryCodes) != 10 || added.Cookie == "" || added.Passkey.Name != "laptop" {
		t.Fatalf("added = %d codes, cookie %q, name %q", len(added.RecoveryCodes), added.Cookie, added.Passkey.Name)
	}
	if _, err := e.svc.Authenticate(ctx, request(enrolToken, "")); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("the enrolling session survived the rotation: %v", err)
	}
	if p2 := e.principal(t, added.Cookie); !p2.Full() || !p2.RecentMFA(e.clock.Now(), time.Minute) {
		t.Errorf("after enrolment: stage %q, MFA at %v", p2.Session.Stage, p2.Session.MFAAt)
	}
	if m, _ := e.svc.MFA(ctx, u.ID); m.Passkeys != 1 || m.RecoveryCodes != 10 || m.TOTP {
		t.Errorf("mfa = %+v", m)
	}
	if evs := e.audits(t, "user.mfa_enrolled"); len(evs) != 1 || evs[0]["factor"] != "passkey" {
		t.Errorf("enrolment audit = %v", evs)
	}

	e.clock.Advance(time.Minute)
	p3, _ := e.signIn(t, "root")
	if p3.Session.Stage != access.StageMFA {
		t.Fatalf("second sign-in: stage %q, want mfa", p3.Session.Stage)
	}
	lopts, err := pk.BeginLogin(ctx, p3)
	if err != nil {
		t.Fatal(err)
	}
	if al := lopts.Response.AllowedCredentials; len(al) != 1 || string(al[0].CredentialID) != string(k.id) {
		t.Errorf("allowed credentials = %+v, want the one passkey", al)
	}
	assertion := k.get(t, lopts)
	cookie, err := pk.FinishLogin(ctx, p3, assertion)
	if err != nil {
		t.Fatal(err)
	}
	if p4 := e.principal(t, cookie); !p4.Full() {
		t.Errorf("after the passkey: stage %q", p4.Session.Stage)
	}
	if evs := e.audits(t, "user.mfa_verified"); len(evs) != 2 || evs[1]["factor"] != "passkey" {
		t.Errorf("verification audit = %v", evs)
	}
	pks, _ := e.svc.PasskeysOf(ctx, u.ID)
	if len(pks) != 1 || pks[0].SignCount != 1 || pks[0].LastUsedAt.IsZero() {
		t.Errorf("stored passkey after use = %+v", pks)
	}

	// The same assertion again: its ceremony is gone (one-time), and a new
	// ceremony has a new challenge.
	p5, _ := e.signIn(t, "root")
	if _, err := pk.FinishLogin(ctx, p5, assertion); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("assertion without a ceremony: %v, want refused", err)
	}
	if _, err := pk.BeginLogin(ctx, p5); err != nil {
		t.Fatal(err)
	}
	if _, err := pk.FinishLogin(ctx, p5, assertion); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("replayed assertion: %v, want refused", err)
	}
}

// TestPasskeyRefusals: another origin, another user's passkey, a cloned
// authenticator, an expired ceremony: each refused, failures audited.
func TestPasskeyRefusals(t *testing.T) { eachBackend(t, testPasskeyRefusals) }

func testPasskeyRefusals(t *testing.T, b backend) {
	e := newEnv(t, b)
	pk := newPasskeys(t, e)
	e.user(t, "ann", access.RoleAdmin)
	e.user(t, "bob", access.RoleOperator)
	ann, bob := newSoftKey(t), newSoftKey(t)

	p, _ := e.signIn(t, "ann")
	opts, err := pk.BeginRegistration(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	evil := *ann
	evil.origin = "https://collector.test.evil.example"
	if _, err := pk.FinishRegistration(ctx, p, "", evil.create(t, opts)); !errors.Is(err, access.ErrInvalid) {
		t.Errorf("registration from another origin: %v, want refused", err)
	}
	if _, err := pk.FinishRegistration(ctx, p, "", ann.create(t, opts)); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("registration finished twice: %v, want refused (the ceremony is one-time)", err)
	}
	enroll(t, pk, p, ann)
	pb, _ := e.signIn(t, "bob") // an operator: no second factor needed, a full session
	if got := enroll(t, pk, pb, bob); len(got.RecoveryCodes) != 10 {
		t.Errorf("bob's first factor came with %d recovery codes", len(got.RecoveryCodes))
	}

	// Bob's passkey answering Ann's challenge.
	pa, annToken := e.signIn(t, "ann")
	opts2, err := pk.BeginLogin(ctx, pa)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pk.FinishLogin(ctx, pa, bob.get(t, opts2)); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("bob's passkey for ann: %v, want refused", err)
	}
	if p2 := e.principal(t, annToken); p2.Full() {
		t.Error("ann's session went full with bob's passkey")
	}

	// A clone: a copy of Ann's key whose counter is behind the original's.
	if _, err := login(t, pk, pa, ann); err != nil {
		t.Fatal(err)
	}
	if _, err := login(t, pk, e.must(t, "ann"), ann); err != nil {
		t.Fatal(err)
	}
	clone := *ann
	clone.count = 0
	if _, err := login(t, pk, e.must(t, "ann"), &clone); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("cloned authenticator (counter 1 after %d): %v, want refused", ann.count, err)
	}

	// A ceremony older than its TTL.
	pe := e.must(t, "ann")
	opts3, err := pk.BeginLogin(ctx, pe)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(access.PasskeyCeremonyTTL + time.Second)
	if _, err := pk.FinishLogin(ctx, pe, ann.get(t, opts3)); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("expired ceremony: %v, want refused", err)
	}

	var reasons []string
	for _, d := range e.audits(t, "user.mfa_failed") {
		reasons = append(reasons, d["reason"].(string))
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"not registered to this user", "may be cloned"} {
		if !strings.Contains(all, want) {
			t.Errorf("failure audits %q: none says %q", reasons, want)
		}
	}
}

// must signs login in again and returns the principal.
func (e *env) must(t *testing.T, login string) *access.Principal {
	t.Helper()
	p, _ := e.signIn(t, login)
	return p
}

// TestPasskeyStepUp: with a second factor, adding a passkey needs it
// recently; verifying a passkey gives a step-up.
func TestPasskeyStepUp(t *testing.T) { eachBackend(t, testPasskeyStepUp) }

func testPasskeyStepUp(t *testing.T, b backend) {
	e := newEnv(t, b)
	pk := newPasskeys(t, e)
	e.user(t, "ann", access.RoleAdmin)
	k := newSoftKey(t)
	added := enroll(t, pk, e.must(t, "ann"), k)
	e.clock.Advance(e.svc.Config().StepUp + time.Minute)
	p := e.principal(t, added.Cookie)
	if p.RecentMFA(e.clock.Now(), e.svc.Config().StepUp) {
		t.Fatal("the second factor is still recent")
	}
	if _, err := pk.BeginRegistration(ctx, p); !errors.Is(err, access.ErrStepUp) {
		t.Errorf("adding a passkey without a recent factor: %v, want ErrStepUp", err)
	}
	cookie, err := login(t, pk, p, k)
	if err != nil {
		t.Fatal(err)
	}
	p = e.principal(t, cookie)
	if !p.RecentMFA(e.clock.Now(), e.svc.Config().StepUp) {
		t.Error("a passkey did not step up")
	}
	second := enroll(t, pk, p, newSoftKey(t))
	if second.RecoveryCodes != nil {
		t.Error("a second passkey replaced the recovery codes")
	}
	// Both passkeys: one can go; the last of an admin cannot.
	p = e.principal(t, second.Cookie)
	if err := e.svc.RemovePasskey(ctx, p, second.Passkey.ID); err != nil {
		t.Fatal(err)
	}
	pks, _ := e.svc.PasskeysOf(ctx, p.User.ID)
	if len(pks) != 1 {
		t.Fatalf("%d passkeys after removing one of two", len(pks))
	}
	if err := e.svc.RemovePasskey(ctx, p, pks[0].ID); !errors.Is(err, access.ErrConflict) {
		t.Errorf("removing an admin's last factor: %v, want ErrConflict", err)
	}
}

// TestPasskeyTamperedRowGrantsNothing: a key swapped in the database (an
// attacker with write access and no integrity key) is no passkey.
func TestPasskeyTamperedRowGrantsNothing(t *testing.T) {
	eachBackend(t, testPasskeyTamperedRowGrantsNothing)
}

func testPasskeyTamperedRowGrantsNothing(t *testing.T, b backend) {
	e := newEnv(t, b)
	pk := newPasskeys(t, e)
	u := e.user(t, "ann", access.RoleOperator)
	e.user(t, "mallory", access.RoleViewer)
	ann, attacker := newSoftKey(t), newSoftKey(t)
	enroll(t, pk, e.must(t, "ann"), ann)
	enroll(t, pk, e.must(t, "mallory"), attacker) // a well-formed COSE key of the attacker's
	if _, err := login(t, pk, e.must(t, "ann"), ann); err != nil {
		t.Fatalf("ann's passkey before the tampering: %v", err)
	}
	db := rawDB(t, e)
	if _, err := db.Exec(`UPDATE passkeys SET public_key = (SELECT public_key FROM passkeys WHERE credential_id = ?) WHERE credential_id = ?`, attacker.id, ann.id); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.svc.MFA(ctx, u.ID); m.Passkeys != 0 {
		t.Errorf("a passkey with a swapped key counts: %+v", m)
	}
	if _, err := pk.BeginLogin(ctx, e.must(t, "ann")); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("begin with only a tampered passkey: %v, want no passkey", err)
	}
}

// TestPasskeysNeedAHostName: browsers take no IP address as a relying
// party, so the platform says so instead of failing every ceremony.
func TestPasskeysNeedAHostName(t *testing.T) {
	e := newEnv(t, onSQLite) // no store involved
	u, _ := url.Parse("https://127.0.0.1:8443")
	if _, err := access.NewPasskeys(e.svc, access.PasskeyConfig{PublicURL: u}); !errors.Is(err, access.ErrPasskeysUnavailable) {
		t.Errorf("NewPasskeys(%s) = %v, want ErrPasskeysUnavailable", u, err)
	}
}
