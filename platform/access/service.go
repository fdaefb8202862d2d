package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/store"
)

// Token prefixes.
const (
	// APITokenPrefix marks a user's API token (personal access token).
	APITokenPrefix = "cpat_"
	// sessionPrefix marks a session cookie's value.
	sessionPrefix = "csess_"
	// SetupTokenPrefix marks the one-time setup token of a new platform.
	SetupTokenPrefix = "csetup_"
)

// Config tunes the access service. Start from DefaultConfig.
type Config struct {
	// SessionIdle ends a session unused for that long; SessionAbsolute
	// ends it whatever the activity.
	SessionIdle, SessionAbsolute time.Duration
	// StepUp is how recent a second factor must be for a destructive act.
	StepUp time.Duration
	// TokenDefaultTTL and TokenMaxTTL bound API tokens.
	TokenDefaultTTL, TokenMaxTTL time.Duration
	// RequireMFAForAll requires a second factor of every user (admins
	// always need one).
	RequireMFAForAll bool
	// Throttle tunes the back-off after failed sign-ins.
	Throttle ThrottleConfig
	// Password is the argon2id cost of new hashes.
	Password PasswordParams
	// ConcurrentHashes bounds the argon2 computations in flight.
	ConcurrentHashes int
}

// DefaultConfig returns the defaults: sessions idle 30 min, at most 12 h;
// step-up within 10 min; tokens 90 days by default, a year at most.
func DefaultConfig() Config {
	return Config{
		SessionIdle: 30 * time.Minute, SessionAbsolute: 12 * time.Hour, StepUp: 10 * time.Minute,
		TokenDefaultTTL: 90 * 24 * time.Hour, TokenMaxTTL: 365 * 24 * time.Hour,
		Throttle: DefaultThrottleConfig(), Password: DefaultPasswordParams, ConcurrentHashes: 4,
	}
}

// Sealer seals small secrets at rest (TOTP seeds) with the platform's
// data key, bound to aad.
type Sealer interface {
	Seal(plain, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Service signs users in, keeps their sessions, issues and checks API
// tokens and second factors. Keys: deviceKey signs device cookies,
// codeKey keys the hashes of recovery codes (so a database read does not
// let them be guessed offline).
type Service struct {
	cfg       Config
	st        Store
	seal      Sealer
	hasher    *hasher
	deviceKey []byte
	codeKey   []byte
	log       *slog.Logger
	now       func() time.Time

	touchMu   sync.Mutex
	lastTouch map[string]time.Time // token ID -> last LastUsedAt write
}

// New returns the service; key (32 bytes, kept outside the database) is
// derived into the device-cookie and recovery-code keys.
func New(cfg Config, st Store, seal Sealer, key []byte, log *slog.Logger, now func() time.Time) (*Service, error) {
	if len(key) < 32 {
		return nil, errors.New("access: key must be at least 32 bytes")
	}
	h, err := newHasher(cfg.Password, cfg.ConcurrentHashes)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Service{cfg: cfg, st: st, seal: seal, hasher: h, log: log, now: now,
		deviceKey: derive(key, "collector device cookie v1"), codeKey: derive(key, "collector recovery codes v1"),
		lastTouch: map[string]time.Time{}}, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 128 random bits in lowercase base32.
func NewID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// Meta is who is asking, for the audit log and the throttles.
type Meta struct {
	Source    string // client address (without port)
	UserAgent string
}

func (m Meta) details(d map[string]any) map[string]any {
	if d == nil {
		d = map[string]any{}
	}
	d["source"] = m.Source
	if m.UserAgent != "" {
		d["user_agent"] = termsafe.Clip(m.UserAgent, 256)
	}
	return d
}

// CreateUserRequest creates a local (or, with Password empty, an
// SSO-only) user.
type CreateUserRequest struct {
	Login, DisplayName, Password string
	Role                         Role
}

// CreateUser checks and creates a user; actor names who does it.
func (s *Service) CreateUser(ctx context.Context, req CreateUserRequest, actor string, m Meta) (User, error) {
	login, err := NormalizeLogin(req.Login)
	if err != nil {
		return User{}, err
	}
	if err := CheckDisplayName(req.DisplayName); err != nil {
		return User{}, err
	}
	if !req.Role.Valid() {
		return User{}, fmt.Errorf("%w: role %q", ErrInvalid, req.Role)
	}
	now := s.now()
	u := User{ID: NewID("usr"), Login: login, DisplayName: req.DisplayName, Role: req.Role, CreatedAt: now, UpdatedAt: now}
	if req.Password != "" {
		if err := CheckPassword(req.Password, login); err != nil {
			return User{}, err
		}
		if u.PasswordHash, err = s.hasher.hash(ctx, req.Password); err != nil {
			return User{}, err
		}
	}
	ev := store.Event{Time: now, Actor: actor, Action: "user.created", Target: u.ID,
		Details: m.details(map[string]any{"login": login, "role": string(u.Role)})}
	if err := s.st.CreateUser(ctx, u, ev); err != nil {
		return User{}, err
	}
	return u, nil
}

// SetPassword checks and sets a user's password, signing them out
// everywhere else (their other sessions and every token stay valid only
// if keepSession names the session to keep).
func (s *Service) SetPassword(ctx context.Context, u User, password, actor string, m Meta) error {
	if err := CheckPassword(password, u.Login); err != nil {
		return err
	}
	h, err := s.hasher.hash(ctx, password)
	if err != nil {
		return err
	}
	u.PasswordHash, u.UpdatedAt = h, s.now()
	ev := store.Event{Time: u.UpdatedAt, Actor: actor, Action: "user.password_set", Target: u.ID, Details: m.details(map[string]any{"login": u.Login})}
	return s.st.UpdateUser(ctx, u, true, ev)
}

// SetRole changes a user's role. Lowering it revokes the user's sessions
// and tokens at once (their powers must not outlive the change).
func (s *Service) SetRole(ctx context.Context, id string, role Role, actor string, m Meta) (User, error) {
	if !role.Valid() {
		return User{}, fmt.Errorf("%w: role %q", ErrInvalid, role)
	}
	u, err := s.st.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	old := u.Role
	u.Role, u.UpdatedAt = role, s.now()
	ev := store.Event{Time: u.UpdatedAt, Actor: actor, Action: "user.role_changed", Target: u.ID,
		Details: m.details(map[string]any{"login": u.Login, "from": string(old), "to": string(role)})}
	// Any change re-authenticates the user: a lowered role must not live on
	// in a session or token, a raised one starts in a fresh session.
	return u, s.st.UpdateUser(ctx, u, role != old, ev)
}

// SetDisabled disables (revoking every session and token at once) or
// enables a user.
func (s *Service) SetDisabled(ctx context.Context, id string, disabled bool, actor string, m Meta) (User, error) {
	u, err := s.st.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	u.Disabled, u.UpdatedAt = disabled, s.now()
	action := "user.enabled"
	if disabled {
		action = "user.disabled"
	}
	ev := store.Event{Time: u.UpdatedAt, Actor: actor, Action: action, Target: u.ID, Details: m.details(map[string]any{"login": u.Login})}
	return u, s.st.UpdateUser(ctx, u, disabled, ev)
}

// Users lists every user.
func (s *Service) Users(ctx context.Context) ([]User, error) { return s.st.Users(ctx) }

// User returns one user.
func (s *Service) User(ctx context.Context, id string) (User, error) { return s.st.User(ctx, id) }

// hashKey keys the HMAC of a recovery code.
func (s *Service) codeHash(userID, code string) string {
	m := hmac.New(sha256.New, s.codeKey)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(normalizeCode(code)))
	return hex.EncodeToString(m.Sum(nil))
}

func normalizeCode(c string) string {
	return strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(c)))
}

// tokenHash is how sessions and API tokens are stored and looked up.
func tokenHash(tok string) string { return crypto.HashToken(tok) }
