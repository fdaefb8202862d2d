package access

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/crypto"
)

// SetupTTL is how long a setup link works.
const SetupTTL = 24 * time.Hour

// NeedsSetup reports whether the platform has no enabled administrator:
// the setup link then creates one. Users of other roles (automation made
// on the host with `platform users create --token`, say) do not end the
// setup: someone must still be able to administer the platform.
func (s *Service) NeedsSetup(ctx context.Context) (bool, error) {
	n, err := s.st.CountAdmins(ctx)
	return n == 0, err
}

// NewSetupToken makes a one-time setup token (replacing any earlier one)
// for a platform with no enabled admin, and returns it: whoever holds it
// creates the first admin. "" when an admin exists.
func (s *Service) NewSetupToken(ctx context.Context) (string, error) {
	if need, err := s.NeedsSetup(ctx); err != nil || !need {
		return "", err
	}
	tok, err := crypto.NewToken(SetupTokenPrefix)
	if err != nil {
		return "", err
	}
	return tok, s.st.PutSetupToken(ctx, tokenHash(tok), s.now().Add(SetupTTL))
}

// CheckSetupToken reports whether tok is the live setup token.
func (s *Service) CheckSetupToken(ctx context.Context, tok string) error {
	hash, exp, err := s.st.SetupToken(ctx)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: this platform is set up already, or its setup link expired: ask whoever runs it (`platform users` on its host)", ErrUnauthenticated)
	}
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(hash), []byte(tokenHash(tok))) != 1 || !s.now().Before(exp) {
		return fmt.Errorf("%w: the setup link is not valid (expired or replaced): restart the platform for a new one", ErrUnauthenticated)
	}
	return nil
}

// CompleteSetup creates the first admin with the setup token and signs
// them in; the session must enroll a second factor before anything else.
func (s *Service) CompleteSetup(ctx context.Context, tok string, req CreateUserRequest, m Meta) (*SignedIn, error) {
	if err := s.CheckSetupToken(ctx, tok); err != nil {
		return nil, err
	}
	login, err := NormalizeLogin(req.Login)
	if err != nil {
		return nil, err
	}
	if err := CheckDisplayName(req.DisplayName); err != nil {
		return nil, err
	}
	if err := CheckPassword(req.Password, login); err != nil {
		return nil, err
	}
	now := s.now()
	u := User{ID: NewID("usr"), Login: login, DisplayName: req.DisplayName, Role: RoleAdmin, CreatedAt: now, UpdatedAt: now}
	if u.PasswordHash, err = s.hasher.hash(ctx, req.Password); err != nil {
		return nil, err
	}
	ev := EventFor(now, "setup", "user.created", u.ID, m, map[string]any{"login": login, "role": string(RoleAdmin), "first_admin": true})
	if err := s.st.CreateFirstUser(ctx, u, tokenHash(tok), now, ev); err != nil {
		return nil, err
	}
	return s.startSession(ctx, u, "password", "", m)
}
