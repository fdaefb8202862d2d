package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/store"
)

// Errors of the package; the HTTP layer maps them to statuses.
var (
	// ErrInvalid: a request or a value is wrong (400).
	ErrInvalid = errors.New("invalid")
	// ErrWeakPassword: a new password is refused (400), with the reason.
	ErrWeakPassword = errors.New("password refused")
	// ErrBadCredentials: the login or the password is wrong. One error for
	// both, so a refusal never tells whether the login exists (401).
	ErrBadCredentials = errors.New("wrong login or password")
	// ErrThrottled: too many failures lately; RetryAfter says when (429).
	ErrThrottled = errors.New("too many failed sign-ins")
	// ErrUnauthenticated: no valid session or token (401).
	ErrUnauthenticated = errors.New("not signed in")
	// ErrForbidden: signed in, but the role does not allow it (403).
	ErrForbidden = errors.New("not allowed for your role")
	// ErrStepUp: the act needs a second factor verified in the last 10
	// minutes (403, with a code the console turns into a prompt).
	ErrStepUp = errors.New("confirm with your second factor first")
	// ErrNotFound: no such user or token (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the login is taken, or the act conflicts (409).
	ErrConflict = errors.New("conflict")
	// ErrSecondFactor: a second factor (code, recovery code, passkey) was
	// wrong, replayed or expired (401).
	ErrSecondFactor = errors.New("second factor refused")
)

// ThrottledError says how long to wait.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed sign-ins: try again in %s", e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// User is a person (or, for break-glass and automation, a named account).
type User struct {
	ID          string
	Login       string // normalized (NormalizeLogin)
	DisplayName string
	Role        Role
	Disabled    bool
	// PasswordHash is the argon2id PHC string; "" for a user who signs in
	// with single sign-on only.
	PasswordHash string
	// SSOIssuer and SSOSubject name the user at the OpenID provider that
	// created it ("" for a local user).
	SSOIssuer, SSOSubject string
	CreatedAt, UpdatedAt  time.Time
}

// MFA says which second factors a user has.
type MFA struct {
	TOTP          bool
	Passkeys      int
	RecoveryCodes int // unused ones
}

// Enrolled reports whether the user has any second factor.
func (m MFA) Enrolled() bool { return m.TOTP || m.Passkeys > 0 }

// MaxLoginRunes bounds a login name.
const MaxLoginRunes = 64

// NormalizeLogin returns the canonical form of a login name (NFC,
// lowercased, trimmed) or why it is refused: empty, over 64 characters,
// or holding a control, formatting or space character. Two logins that
// look the same are the same login.
func NormalizeLogin(s string) (string, error) {
	if !utf8.ValidString(s) || len(s) > 4*MaxLoginRunes {
		return "", fmt.Errorf("%w: login must be UTF-8 of at most %d characters", ErrInvalid, MaxLoginRunes)
	}
	n := strings.ToLower(norm.NFC.String(strings.TrimSpace(s)))
	switch {
	case n == "":
		return "", fmt.Errorf("%w: login is empty", ErrInvalid)
	case utf8.RuneCountInString(n) > MaxLoginRunes:
		return "", fmt.Errorf("%w: login must be at most %d characters", ErrInvalid, MaxLoginRunes)
	case termsafe.IndexEscaped(n) >= 0:
		return "", fmt.Errorf("%w: login must not contain control or formatting characters", ErrInvalid)
	case strings.IndexFunc(n, unicode.IsSpace) >= 0:
		return "", fmt.Errorf("%w: login must not contain spaces", ErrInvalid)
	}
	return n, nil
}

// CheckDisplayName bounds a display name.
func CheckDisplayName(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 128 || termsafe.IndexEscaped(s) >= 0 {
		return fmt.Errorf("%w: display name must be printable text of at most 128 characters", ErrInvalid)
	}
	return nil
}

// Session is a browser's signed-in session, kept server side; the cookie
// holds only a random token whose hash is the key.
type Session struct {
	Hash       string
	UserID     string
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is the absolute end, whatever the activity.
	ExpiresAt time.Time
	// Stage is StageFull once signed in; StageMFA while it waits for the
	// second factor, StageEnroll while it must enroll one (only those
	// pages accept it then).
	Stage string
	// MFAAt is when a second factor was last verified (zero: never in this
	// session); destructive acts need it recent (step-up).
	MFAAt time.Time
	// Method is how the user signed in: "password" or "sso".
	Method string
	// SSOSubject is the provider's subject for an SSO session.
	SSOSubject string
	Source     string
	UserAgent  string
}

// Session stages.
const (
	StageMFA    = "mfa"
	StageEnroll = "enroll"
	StageFull   = "full"
)

// APIToken is a named, expiring, revocable token of a user, for the CLI
// and automation.
type APIToken struct {
	ID         string
	UserID     string
	Name       string
	Role       Role
	Hash       string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// Throttle is one failure counter (of a login, a source address, or a
// known device of a login).
type Throttle struct {
	Key          string
	Failures     int
	LastFailure  time.Time
	BlockedUntil time.Time
}

// Count adds a failure at now to t, whose last failure was at last: the
// count starts over when last is older than window; block says how long
// a count blocks from now. Backends call it inside RecordFailure's
// transaction.
func (t *Throttle) Count(last, now time.Time, window time.Duration, block func(failures int) time.Duration) {
	if now.Sub(last) > window {
		t.Failures = 0
	}
	t.Failures++
	t.LastFailure = now
	t.BlockedUntil = now.Add(block(t.Failures))
}

// Store is what the access service keeps. Backends: platform/store/sqlite
// and platform/store/postgres.
// Every write that is an administrative or security act appends its event
// to the audit log in the same transaction.
type Store interface {
	CountAdmins(ctx context.Context) (int, error)
	CreateUser(ctx context.Context, u User, ev store.Event) error
	User(ctx context.Context, id string) (User, error)
	UserByLogin(ctx context.Context, login string) (User, error)
	UserBySSO(ctx context.Context, issuer, subject string) (User, error)
	Users(ctx context.Context) ([]User, error)
	// UpdateUser replaces the user's mutable fields. When revoke is set,
	// the user's sessions and tokens are deleted in the same transaction
	// (disabled, role lowered, password reset).
	UpdateUser(ctx context.Context, u User, revoke bool, ev store.Event) error

	CreateSession(ctx context.Context, s Session, ev *store.Event) error
	SessionByHash(ctx context.Context, hash string) (Session, error)
	TouchSession(ctx context.Context, hash string, at time.Time) error
	// RotateSession replaces the session old by s (a new token: sign-in
	// and privilege changes never keep a token an attacker may have set).
	RotateSession(ctx context.Context, old string, s Session, ev *store.Event) error
	DeleteSession(ctx context.Context, hash string, ev *store.Event) error
	// DeleteSessions signs the user out everywhere; keep, if set, survives.
	DeleteSessions(ctx context.Context, userID, keep string, ev store.Event) (int, error)

	CreateToken(ctx context.Context, t APIToken, ev store.Event) error
	TokenByHash(ctx context.Context, hash string) (APIToken, error)
	Token(ctx context.Context, id string) (APIToken, error)
	Tokens(ctx context.Context, userID string) ([]APIToken, error)
	RevokeToken(ctx context.Context, id string, at time.Time, ev store.Event) error
	TouchToken(ctx context.Context, id string, at time.Time) error

	// Failure counters: Throttles reads some, RecordFailure bumps one and
	// sets when it is blocked until, ClearThrottle drops one (or all with
	// "").
	Throttles(ctx context.Context, keys ...string) ([]Throttle, error)
	ActiveThrottles(ctx context.Context, since time.Time) ([]Throttle, error)
	// RecordFailure counts a failure of key at now and returns the
	// counter: in one transaction, so that failures counted at once (by
	// several platform processes on one database) all count. The count
	// starts over when the last failure is older than window; block says
	// how long a count blocks from now.
	RecordFailure(ctx context.Context, key string, now time.Time, window time.Duration, block func(failures int) time.Duration) (Throttle, error)
	ClearThrottle(ctx context.Context, key string, ev *store.Event) error

	// AppendAudit records a security event with no other write (a refused
	// sign-in).
	AppendAudit(ctx context.Context, ev store.Event) error
	// Setting and PutSetting keep the platform's settings: the service's
	// own key is one (sealed with the data key; see platform.OpenAccess).
	Setting(ctx context.Context, key string) (string, error)
	PutSetting(ctx context.Context, key, value string, ev *store.Event) error

	MFAStore
	PasskeyStore
	SSOStore
	SetupStore
	DeviceStore
}

// SetupStore keeps the one-time setup token of a platform with no user.
type SetupStore interface {
	// PutSetupToken stores the setup token's hash and expiry (replacing an
	// earlier one).
	PutSetupToken(ctx context.Context, hash string, expires time.Time) error
	// SetupToken returns the stored hash and expiry (ErrNotFound if none).
	SetupToken(ctx context.Context) (string, time.Time, error)
	// CreateFirstUser creates u if the platform has no user yet and hash is
	// the live setup token, burning the token, in one transaction;
	// ErrConflict if a user exists, ErrUnauthenticated if the token is
	// not the live one.
	CreateFirstUser(ctx context.Context, u User, hash string, now time.Time, ev store.Event) error
}
