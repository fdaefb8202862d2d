package access

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/store"
)

// Passkey is a user's WebAuthn credential (a passkey or a security key),
// used as a second factor. The credential ID, the user and the public key
// are what grant access: the store keeps them under an integrity MAC.
type Passkey struct {
	ID     string // "pk_..." (ours; the credential ID is the authenticator's)
	UserID string
	// RPID is the relying party the credential is scoped to (the public
	// URL's host when it was registered): a browser offers it only there.
	RPID         string
	CredentialID []byte
	PublicKey    []byte // COSE_Key
	SignCount    uint32
	AAGUID       []byte
	Transports   []string
	// BackupEligible and BackupState are the BE and BS flags (a synced
	// passkey); UserVerified is whether its registration verified the user.
	BackupEligible, BackupState, UserVerified bool
	AttestationType, AttestationFormat        string
	Attachment                                string // "platform", "cross-platform" or ""
	Name                                      string
	CreatedAt, LastUsedAt                     time.Time
}

// PasskeyCeremony is the server-side state of one WebAuthn ceremony
// between its begin and its finish: the challenge and what it allows.
// It is bound to the browser session that began it (SessionHash), used
// once, and expires after PasskeyCeremonyTTL.
//
// It is a row, not a signed blob in a cookie: a blob is valid until it
// expires, so a captured assertion could be replayed with it meanwhile
// (passkeys without a counter always report 0); taking the row deletes it.
// The row goes with its session too, so a ceremony does not outlive a
// sign-out or a rotation, and it carries a MAC, so a challenge written
// into the database directly is never accepted.
type PasskeyCeremony struct {
	SessionHash string
	UserID      string
	Kind        string // CeremonyRegister or CeremonyLogin
	Data        []byte // webauthn.SessionData as JSON
	ExpiresAt   time.Time
}

// Ceremony kinds.
const (
	CeremonyRegister = "register"
	CeremonyLogin    = "login"
)

// PasskeyCeremonyTTL bounds a ceremony: the browser's prompt times out
// at the same moment.
const PasskeyCeremonyTTL = 5 * time.Minute

// PasskeyStore is the part of Store that keeps passkeys and their
// ceremonies.
type PasskeyStore interface {
	// PasskeyHandle returns the user's WebAuthn user handle (ErrNotFound
	// if none yet).
	PasskeyHandle(ctx context.Context, userID string) ([]byte, error)
	// EnsurePasskeyHandle returns the user's handle, storing handle as it
	// if the user has none yet.
	EnsurePasskeyHandle(ctx context.Context, userID string, handle []byte) ([]byte, error)
	// Passkeys lists the user's passkeys, oldest first; a row whose MAC
	// fails is left out (it grants nothing).
	Passkeys(ctx context.Context, userID string) ([]Passkey, error)
	// CreatePasskey stores pk with ev; ErrConflict if its credential ID is
	// registered already (to anyone).
	CreatePasskey(ctx context.Context, pk Passkey, ev *store.Event) error
	// UsePasskey records a verified use: the new sign count, backup state
	// and time. It is one compare-and-set: ErrSecondFactor unless the count
	// advances (or stays 0 for an authenticator without a counter), so two
	// uses of one assertion, or of a clone, cannot both pass.
	UsePasskey(ctx context.Context, id string, signCount uint32, backupState bool, at time.Time) error
	// DeletePasskey removes the user's passkey id with ev; ErrNotFound if
	// the user has no such passkey.
	DeletePasskey(ctx context.Context, userID, id string, ev store.Event) error
	// PutPasskeyCeremony stores c, replacing a pending one of the same
	// session and kind, and drops expired ones.
	PutPasskeyCeremony(ctx context.Context, c PasskeyCeremony) error
	// TakePasskeyCeremony deletes and returns the session's ceremony of
	// kind, atomically; ErrNotFound if there is none or it expired by now.
	TakePasskeyCeremony(ctx context.Context, sessionHash, kind string, now time.Time) (PasskeyCeremony, error)
}

// PasskeyConfig names the relying party: the platform's public URL.
type PasskeyConfig struct {
	// PublicURL is the platform's public URL (its audience). Its host is
	// the RP ID; its origin the only origin a ceremony may come from.
	PublicURL *url.URL
	// DisplayName is the relying party's name a browser shows.
	DisplayName string
}

// ErrPasskeysUnavailable: the public URL's host is an IP address, which
// browsers refuse as a relying party (a deployment fix, not a user's).
var ErrPasskeysUnavailable = errors.New("passkeys need the platform's public URL to name a host (https://collector.example.com), not an IP address: start it with --public-url (PLATFORM_PUBLIC_URL) set to a name its users reach it by")

// Passkeys registers passkeys and verifies them as a second factor, on the
// account service's store, clock and sessions.
type Passkeys struct {
	svc  *Service
	st   Store
	wa   *webauthn.WebAuthn
	rpID string
}

// NewPasskeys returns the passkey ceremonies of svc for the relying party
// cfg names, or ErrPasskeysUnavailable for an IP-address URL.
func NewPasskeys(svc *Service, cfg PasskeyConfig) (*Passkeys, error) {
	u := cfg.PublicURL
	if u == nil || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no public URL", ErrInvalid)
	}
	if err := protocol.ValidateRPID(u.Hostname()); err != nil {
		return nil, ErrPasskeysUnavailable
	}
	name := cfg.DisplayName
	if name == "" {
		name = "Collector"
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID: u.Hostname(), RPDisplayName: name, RPOrigins: []string{u.Scheme + "://" + u.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: protocol.VerificationPreferred},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: PasskeyCeremonyTTL, TimeoutUVD: PasskeyCeremonyTTL},
			Registration: webauthn.TimeoutConfig{Timeout: PasskeyCeremonyTTL, TimeoutUVD: PasskeyCeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return &Passkeys{svc: svc, st: svc.st, wa: wa, rpID: u.Hostname()}, nil
}

// RPID returns the relying party ID.
func (k *Passkeys) RPID() string { return k.rpID }

// waUser is a user as go-webauthn sees it: the random handle, never our
// user ID, and the passkeys of this relying party.
type waUser struct {
	handle []byte
	u      User
	pks    []Passkey
}

func (w waUser) WebAuthnID() []byte   { return w.handle }
func (w waUser) WebAuthnName() string { return w.u.Login }
func (w waUser) WebAuthnDisplayName() string {
	if w.u.DisplayName != "" {
		return w.u.DisplayName
	}
	return w.u.Login
}
func (w waUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(w.pks))
	for i, pk := range w.pks {
		out[i] = pk.credential()
	}
	return out
}

func (pk Passkey) credential() webauthn.Credential {
	flags := protocol.FlagUserPresent
	for _, f := range []struct {
		on   bool
		flag protocol.AuthenticatorFlags
	}{{pk.UserVerified, protocol.FlagUserVerified}, {pk.BackupEligible, protocol.FlagBackupEligible}, {pk.BackupState, protocol.FlagBackupState}} {
		if f.on {
			flags |= f.flag
		}
	}
	ts := make([]protocol.AuthenticatorTransport, len(pk.Transports))
	for i, t := range pk.Transports {
		ts[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{ID: pk.CredentialID, PublicKey: pk.PublicKey, AttestationType: pk.AttestationType,
		AttestationFormat: pk.AttestationFormat, Transport: ts, Flags: webauthn.NewCredentialFlags(flags),
		Authenticator: webauthn.Authenticator{AAGUID: pk.AAGUID, SignCount: pk.SignCount, Attachment: protocol.AuthenticatorAttachment(pk.Attachment)}}
}

// user returns the webauthn view of p's user with the passkeys of this
// relying party (a passkey made for another host cannot be used here).
func (k *Passkeys) user(ctx context.Context, p *Principal, handle []byte) (waUser, error) {
	all, err := k.st.Passkeys(ctx, p.User.ID)
	if err != nil {
		return waUser{}, err
	}
	w := waUser{handle: handle, u: p.User}
	for _, pk := range all {
		if pk.RPID == k.rpID {
			w.pks = append(w.pks, pk)
		}
	}
	return w, nil
}

// sessionOnly refuses a principal without a browser session: a ceremony
// is bound to the session that began it.
func sessionOnly(p *Principal) error {
	if p.Session == nil {
		return fmt.Errorf("%w: passkeys are used from a browser session, not with an API token", ErrInvalid)
	}
	return nil
}

// mayRegister reports why p may not add a passkey now: a session still
// waiting for its second factor may not, and a user who has one needs it
// recently (as for replacing an authenticator app).
func (k *Passkeys) mayRegister(ctx context.Context, p *Principal) (MFA, error) {
	if err := sessionOnly(p); err != nil {
		return MFA{}, err
	}
	m, err := k.st.MFA(ctx, p.User.ID)
	if err != nil {
		return m, err
	}
	if p.Session.Stage == StageMFA || (m.Enrolled() && !p.RecentMFA(k.svc.now(), k.svc.cfg.StepUp)) {
		return m, ErrStepUp
	}
	return m, nil
}

// putCeremony keeps a begun ceremony's state, bound to p's session.
func (k *Passkeys) putCeremony(ctx context.Context, p *Principal, kind string, sd *webauthn.SessionData) error {
	data, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	return k.st.PutPasskeyCeremony(ctx, PasskeyCeremony{SessionHash: p.Session.Hash, UserID: p.User.ID, Kind: kind,
		Data: data, ExpiresAt: k.svc.now().Add(PasskeyCeremonyTTL)})
}

// takeCeremony returns (and burns) p's session's ceremony of kind.
func (k *Passkeys) takeCeremony(ctx context.Context, p *Principal, kind string) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	c, err := k.st.TakePasskeyCeremony(ctx, p.Session.Hash, kind, k.svc.now())
	if errors.Is(err, ErrNotFound) || err == nil && c.UserID != p.User.ID {
		return sd, fmt.Errorf("%w: no passkey request is pending (it expired after %s, or was used): start again", ErrSecondFactor, PasskeyCeremonyTTL)
	}
	if err != nil {
		return sd, err
	}
	return sd, json.Unmarshal(c.Data, &sd)
}

// BeginRegistration starts adding a passkey for p's user: it returns the
// options for navigator.credentials.create. The user's other passkeys
// are excluded, so one authenticator is not registered twice.
func (k *Passkeys) BeginRegistration(ctx context.Context, p *Principal) (*protocol.CredentialCreation, error) {
	if _, err := k.mayRegister(ctx, p); err != nil {
		return nil, err
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	handle, err := k.st.EnsurePasskeyHandle(ctx, p.User.ID, fresh)
	if err != nil {
		return nil, err
	}
	u, err := k.user(ctx, p, handle)
	if err != nil {
		return nil, err
	}
	creation, sd, err := k.wa.BeginRegistration(u, webauthn.WithExclusions(webauthn.Credentials(u.WebAuthnCredentials()).CredentialDescriptors()))
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	return creation, k.putCeremony(ctx, p, CeremonyRegister, sd)
}

// PasskeyAdded is the result of a registration.
type PasskeyAdded struct {
	Passkey Passkey
	// RecoveryCodes are issued (and shown once) when the passkey is the
	// user's first second factor; nil otherwise.
	RecoveryCodes []string
	// Cookie is the rotated session's new cookie value.
	Cookie string
}

// FinishRegistration checks the browser's answer (the JSON of the new
// PublicKeyCredential) to the pending registration of p's session, stores
// the passkey as name and completes the second factor, as confirming an
// authenticator app does. A first second factor comes with recovery codes.
func (k *Passkeys) FinishRegistration(ctx context.Context, p *Principal, name string, response []byte) (*PasskeyAdded, error) {
	before, err := k.mayRegister(ctx, p)
	if err != nil {
		return nil, err
	}
	if name, err = passkeyName(name, k.svc.now()); err != nil {
		return nil, err
	}
	sd, err := k.takeCeremony(ctx, p, CeremonyRegister)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: the browser's answer is not a passkey registration: %s", ErrInvalid, details(err))
	}
	u, err := k.user(ctx, p, sd.UserID)
	if err != nil {
		return nil, err
	}
	cred, err := k.wa.CreateCredential(u, sd, parsed)
	if err != nil {
		return nil, fmt.Errorf("%w: the passkey was not accepted: %s", ErrInvalid, details(err))
	}
	pk := newPasskey(p.User.ID, k.rpID, name, cred, k.svc.now())
	ev := EventFor(k.svc.now(), p.Actor(), "user.mfa_enrolled", p.User.ID, p.Meta, map[string]any{"factor": "passkey", "passkey": pk.ID, "name": pk.Name})
	if err := k.st.CreatePasskey(ctx, pk, &ev); err != nil {
		return nil, err
	}
	out := &PasskeyAdded{Passkey: pk}
	if !before.Enrolled() {
		if out.RecoveryCodes, err = k.svc.newRecoveryCodes(ctx, p); err != nil {
			return nil, err
		}
	}
	out.Cookie, err = k.svc.completeSecondFactor(ctx, p, "passkey-enrolled")
	return out, err
}

func newPasskey(userID, rpID, name string, c *webauthn.Credential, now time.Time) Passkey {
	ts := make([]string, len(c.Transport))
	for i, t := range c.Transport {
		ts[i] = string(t)
	}
	return Passkey{ID: NewID("pk"), UserID: userID, RPID: rpID, CredentialID: c.ID, PublicKey: c.PublicKey,
		SignCount: c.Authenticator.SignCount, AAGUID: c.Authenticator.AAGUID, Transports: ts,
		BackupEligible: c.Flags.BackupEligible, BackupState: c.Flags.BackupState, UserVerified: c.Flags.UserVerified,
		AttestationType: c.AttestationType, AttestationFormat: c.AttestationFormat, Attachment: string(c.Authenticator.Attachment),
		Name: name, CreatedAt: now}
}

// MaxPasskeyNameRunes bounds a passkey's name.
const MaxPasskeyNameRunes = 64

// passkeyName checks a passkey's name, or names it after the day it was
// added.
func passkeyName(name string, now time.Time) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "Passkey added " + now.UTC().Format("2006-01-02"), nil
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxPasskeyNameRunes || termsafe.IndexEscaped(name) >= 0 {
		return "", fmt.Errorf("%w: a passkey's name must be printable text of at most %d characters", ErrInvalid, MaxPasskeyNameRunes)
	}
	return name, nil
}

// details returns the part of a go-webauthn error meant for the client.
func details(err error) string {
	var pe *protocol.Error
	var uc *protocol.ErrorUnknownCredential
	switch {
	case errors.As(err, &uc) && uc.Err != nil:
		return uc.Err.Details
	case errors.As(err, &pe):
		return pe.Details
	}
	return "unreadable"
}

// BeginLogin starts verifying a passkey of p's user, for a session
// waiting for its second factor or a step-up: it returns the options for
// navigator.credentials.get, allowing only the user's passkeys.
func (k *Passkeys) BeginLogin(ctx context.Context, p *Principal) (*protocol.CredentialAssertion, error) {
	if err := sessionOnly(p); err != nil {
		return nil, err
	}
	handle, err := k.st.PasskeyHandle(ctx, p.User.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	u, err := k.user(ctx, p, handle)
	if err != nil {
		return nil, err
	}
	if len(u.pks) == 0 {
		return nil, fmt.Errorf("%w: no passkey is registered for this account here", ErrSecondFactor)
	}
	assertion, sd, err := k.wa.BeginLogin(u)
	if err != nil {
		return nil, fmt.Errorf("begin passkey sign-in: %w", err)
	}
	return assertion, k.putCeremony(ctx, p, CeremonyLogin, sd)
}

// FinishLogin checks the browser's answer (the JSON of the assertion) to
// the pending sign-in of p's session and completes the second factor. A
// passkey of another user, a bad signature, or a signature counter that
// did not advance (a cloned authenticator) is refused and audited. It
// returns the rotated session's new cookie value.
func (k *Passkeys) FinishLogin(ctx context.Context, p *Principal, response []byte) (string, error) {
	if err := sessionOnly(p); err != nil {
		return "", err
	}
	sd, err := k.takeCeremony(ctx, p, CeremonyLogin)
	if err != nil {
		return "", err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		k.svc.auditFailedFactor(ctx, p, "passkey", "unreadable answer: "+details(err))
		return "", fmt.Errorf("%w: the browser's answer is not a passkey assertion", ErrSecondFactor)
	}
	u, err := k.user(ctx, p, sd.UserID)
	if err != nil {
		return "", err
	}
	pk, ok := u.byCredentialID(parsed.RawID)
	if !ok {
		k.svc.auditFailedFactor(ctx, p, "passkey", "passkey not registered to this user")
		return "", fmt.Errorf("%w: this passkey is not registered for your account", ErrSecondFactor)
	}
	cred, err := k.wa.ValidateLogin(u, sd, parsed)
	if err != nil {
		k.svc.auditPasskeyFailure(ctx, p, pk, "assertion refused: "+details(err))
		return "", fmt.Errorf("%w: the passkey was not accepted", ErrSecondFactor)
	}
	if cred.Authenticator.CloneWarning {
		k.svc.auditPasskeyFailure(ctx, p, pk, fmt.Sprintf("signature counter went backwards (%d after %d): the passkey may be cloned", parsed.Response.AuthenticatorData.Counter, pk.SignCount))
		return "", fmt.Errorf("%w: this passkey's signature counter went backwards, as a copied authenticator's does: use another factor and remove this passkey", ErrSecondFactor)
	}
	if err := k.st.UsePasskey(ctx, pk.ID, cred.Authenticator.SignCount, cred.Flags.BackupState, k.svc.now()); err != nil {
		if errors.Is(err, ErrSecondFactor) {
			k.svc.auditPasskeyFailure(ctx, p, pk, "signature counter did not advance past a concurrent use")
			return "", fmt.Errorf("%w: this passkey was just used: try again", ErrSecondFactor)
		}
		return "", err
	}
	return k.svc.completeSecondFactor(ctx, p, "passkey")
}

func (w waUser) byCredentialID(id []byte) (Passkey, bool) {
	for _, pk := range w.pks {
		if string(pk.CredentialID) == string(id) {
			return pk, true
		}
	}
	return Passkey{}, false
}

func (s *Service) auditPasskeyFailure(ctx context.Context, p *Principal, pk Passkey, reason string) {
	ev := EventFor(s.now(), p.Actor(), "user.mfa_failed", p.User.ID, p.Meta, map[string]any{"factor": "passkey", "passkey": pk.ID, "reason": reason})
	if err := s.st.AppendAudit(ctx, ev); err != nil {
		s.log.Warn("auditing a failed second factor failed", "err", err)
	}
}

// PasskeysOf returns the passkeys of a user (of every relying party).
func (s *Service) PasskeysOf(ctx context.Context, userID string) ([]Passkey, error) {
	return s.st.Passkeys(ctx, userID)
}

// RemovePasskey deletes one of p's passkeys (the route asks for a recent
// second factor). The last second factor of a user who must have one
// stays: add another first, so the account never falls back to a password
// alone.
func (s *Service) RemovePasskey(ctx context.Context, p *Principal, id string) error {
	pks, err := s.st.Passkeys(ctx, p.User.ID)
	if err != nil {
		return err
	}
	var pk *Passkey
	for i := range pks {
		if pks[i].ID == id {
			pk = &pks[i]
		}
	}
	if pk == nil {
		return fmt.Errorf("%w: you have no passkey %q", ErrNotFound, id)
	}
	m, err := s.st.MFA(ctx, p.User.ID)
	if err != nil {
		return err
	}
	if s.mfaRequired(p.User) && !m.TOTP && m.Passkeys <= 1 {
		return fmt.Errorf("%w: this is your last second factor and your account needs one: add another (a passkey or an authenticator app) first", ErrConflict)
	}
	ev := EventFor(s.now(), p.Actor(), "user.passkey_removed", p.User.ID, p.Meta, map[string]any{"passkey": pk.ID, "name": pk.Name})
	return s.st.DeletePasskey(ctx, p.User.ID, id, ev)
}
