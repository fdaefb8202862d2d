package access

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/collectorhq/collector/platform/store"
)

// TOTPRecord is a user's TOTP seed (sealed with the data key; nil until
// one is confirmed), a new seed waiting for its first code (Pending), and
// the last time step a code was accepted for: a code is accepted once, a
// replay within its window is refused.
type TOTPRecord struct {
	Sealed   []byte
	Pending  []byte
	LastStep int64
}

// Confirmed reports whether the user has a working TOTP seed.
func (r TOTPRecord) Confirmed() bool { return len(r.Sealed) > 0 }

// MFAStore is the part of Store that keeps second factors.
type MFAStore interface {
	MFA(ctx context.Context, userID string) (MFA, error)
	TOTP(ctx context.Context, userID string) (TOTPRecord, error)
	PutTOTP(ctx context.Context, userID string, rec TOTPRecord, ev *store.Event) error
	// UseTOTPStep records step as used, atomically; ErrSecondFactor if a
	// step at or after it was used already.
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	SetRecoveryCodes(ctx context.Context, userID string, hashes []string, ev *store.Event) error
	// UseRecoveryCode burns the unused code with that hash, atomically;
	// ErrSecondFactor if there is none.
	UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error
	// ResetMFA removes every second factor of the user and signs them out
	// everywhere, in one transaction.
	ResetMFA(ctx context.Context, userID string, ev store.Event) error
}

// totpOpts: RFC 6238 defaults every authenticator app reads: SHA-1,
// 6 digits, 30 s, one step of skew each way.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

func totpAAD(userID string) []byte { return []byte("totp:" + userID) }

// TOTPEnrollment is what a user types into an authenticator app.
type TOTPEnrollment struct {
	Secret string // base32
	URL    string // otpauth://totp/...
}

// BeginTOTP makes a new TOTP seed for the principal's user, pending until
// a code of it is confirmed; a confirmed seed keeps working meanwhile.
// Replacing a working seed needs a recent second factor.
func (s *Service) BeginTOTP(ctx context.Context, p *Principal) (*TOTPEnrollment, error) {
	cur, err := s.st.TOTP(ctx, p.User.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if cur.Confirmed() && !p.RecentMFA(s.now(), s.cfg.StepUp) {
		return nil, ErrStepUp
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Collector", AccountName: p.User.Login, Period: 30,
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, err
	}
	if cur.Pending, err = s.seal.Seal([]byte(key.Secret()), totpAAD(p.User.ID)); err != nil {
		return nil, err
	}
	if err := s.st.PutTOTP(ctx, p.User.ID, cur, nil); err != nil {
		return nil, err
	}
	return &TOTPEnrollment{Secret: key.Secret(), URL: key.URL()}, nil
}

// matchStep returns the time step whose code is code, within the skew,
// or -1. Every candidate is compared, in constant time.
func matchStep(secret, code string, now time.Time) int64 {
	code = strings.TrimSpace(code)
	found := int64(-1)
	step := now.Unix() / 30
	for d := int64(-1); d <= 1; d++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix((step+d)*30, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found = step + d
		}
	}
	return found
}

// ConfirmTOTP checks a code of the new seed, makes it the user's second
// factor, issues recovery codes (returned once) and, for a session waiting
// to enroll, completes the sign-in. It returns the rotated session's new
// cookie value ("" for a token principal).
func (s *Service) ConfirmTOTP(ctx context.Context, p *Principal, code string) (codes []string, cookie string, err error) {
	id := p.User.ID
	rec, err := s.st.TOTP(ctx, id)
	if err != nil || len(rec.Pending) == 0 {
		return nil, "", fmt.Errorf("%w: start a TOTP enrolment first", ErrInvalid)
	}
	secret, err := s.seal.Open(rec.Pending, totpAAD(id))
	if err != nil {
		return nil, "", err
	}
	step := matchStep(string(secret), code, s.now())
	if step < 0 {
		return nil, "", fmt.Errorf("%w: the code does not match: check the device's clock and type the current code", ErrSecondFactor)
	}
	ev := EventFor(s.now(), p.Actor(), "user.mfa_enrolled", id, p.Meta, map[string]any{"factor": "totp"})
	if err := s.st.PutTOTP(ctx, id, TOTPRecord{Sealed: rec.Pending, LastStep: step}, &ev); err != nil {
		return nil, "", err
	}
	if codes, err = s.newRecoveryCodes(ctx, p); err != nil {
		return nil, "", err
	}
	cookie, err = s.completeSecondFactor(ctx, p, "totp-enrolled")
	return codes, cookie, err
}

// VerifyTOTP checks a code of the user's confirmed seed (once per time
// step) for a session waiting for its second factor, or for a step-up. It
// returns the rotated session's new cookie value.
func (s *Service) VerifyTOTP(ctx context.Context, p *Principal, code string) (string, error) {
	rec, err := s.st.TOTP(ctx, p.User.ID)
	if err != nil || !rec.Confirmed() {
		return "", fmt.Errorf("%w: no authenticator app is enrolled", ErrSecondFactor)
	}
	secret, err := s.seal.Open(rec.Sealed, totpAAD(p.User.ID))
	if err != nil {
		return "", err
	}
	step := matchStep(string(secret), code, s.now())
	if step < 0 {
		s.auditFailedFactor(ctx, p, "totp", "wrong code")
		return "", fmt.Errorf("%w: wrong code", ErrSecondFactor)
	}
	if err := s.st.UseTOTPStep(ctx, p.User.ID, step); err != nil {
		s.auditFailedFactor(ctx, p, "totp", "code already used")
		return "", fmt.Errorf("%w: that code was used already: wait for the next one", ErrSecondFactor)
	}
	return s.completeSecondFactor(ctx, p, "totp")
}

// VerifyRecoveryCode burns one recovery code as the second factor.
func (s *Service) VerifyRecoveryCode(ctx context.Context, p *Principal, code string) (string, error) {
	if err := s.st.UseRecoveryCode(ctx, p.User.ID, s.codeHash(p.User.ID, code), s.now()); err != nil {
		s.auditFailedFactor(ctx, p, "recovery_code", "unknown or used code")
		return "", fmt.Errorf("%w: unknown or already used recovery code", ErrSecondFactor)
	}
	return s.completeSecondFactor(ctx, p, "recovery_code")
}

func (s *Service) auditFailedFactor(ctx context.Context, p *Principal, factor, reason string) {
	ev := EventFor(s.now(), p.Actor(), "user.mfa_failed", p.User.ID, p.Meta, map[string]any{"factor": factor, "reason": reason})
	if err := s.st.AppendAudit(ctx, ev); err != nil {
		s.log.Warn("auditing a failed second factor failed", "err", err)
	}
}

// CompleteSecondFactor is completeSecondFactor for other packages'
// factors (passkeys): it rotates the session to full with a fresh MFAAt.
func (s *Service) CompleteSecondFactor(ctx context.Context, p *Principal, factor string) (string, error) {
	return s.completeSecondFactor(ctx, p, factor)
}

func (s *Service) completeSecondFactor(ctx context.Context, p *Principal, factor string) (string, error) {
	if p.Session == nil {
		return "", nil
	}
	now := s.now()
	ev := EventFor(now, p.Actor(), "user.mfa_verified", p.User.ID, p.Meta, map[string]any{"factor": factor})
	n, tok, err := s.rotate(ctx, *p.Session, StageFull, now, &ev)
	if err != nil {
		return "", err
	}
	p.Session = n
	return tok, nil
}

// recoveryCodes is how many recovery codes a user gets.
const recoveryCodes = 10

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newRecoveryCodes replaces the user's recovery codes with new ones and
// returns them (shown once; stored as HMACs keyed outside the database).
func (s *Service) newRecoveryCodes(ctx context.Context, p *Principal) ([]string, error) {
	codes := make([]string, recoveryCodes)
	hashes := make([]string, recoveryCodes)
	for i := range codes {
		var b [10]byte
		rand.Read(b[:])
		c := strings.ToLower(codeEncoding.EncodeToString(b[:])) // 16 characters, 80 bits
		codes[i] = c[:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:]
		hashes[i] = s.codeHash(p.User.ID, codes[i])
	}
	ev := EventFor(s.now(), p.Actor(), "user.recovery_codes_issued", p.User.ID, p.Meta, nil)
	return codes, s.st.SetRecoveryCodes(ctx, p.User.ID, hashes, &ev)
}

// NewRecoveryCodes replaces a user's recovery codes (needs a recent
// second factor).
func (s *Service) NewRecoveryCodes(ctx context.Context, p *Principal) ([]string, error) {
	if !p.RecentMFA(s.now(), s.cfg.StepUp) {
		return nil, ErrStepUp
	}
	return s.newRecoveryCodes(ctx, p)
}

// MFA returns a user's second factors.
func (s *Service) MFA(ctx context.Context, userID string) (MFA, error) { return s.st.MFA(ctx, userID) }

// ResetMFA removes a user's second factors (an admin act, or break-glass),
// signing them out everywhere; they enroll again at the next sign-in.
func (s *Service) ResetMFA(ctx context.Context, userID, actor string, m Meta) error {
	u, err := s.st.User(ctx, userID)
	if err != nil {
		return err
	}
	return s.st.ResetMFA(ctx, u.ID, EventFor(s.now(), actor, "user.mfa_reset", u.ID, m, map[string]any{"login": u.Login}))
}
