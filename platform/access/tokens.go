package access

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/termsafe"
)

// CreateTokenRequest asks for an API token.
type CreateTokenRequest struct {
	Name string
	// Role is at most the user's (default: the user's).
	Role Role
	// TTL defaults to Config.TokenDefaultTTL, at most TokenMaxTTL.
	TTL time.Duration
}

// CreateToken issues an API token for the principal's user. It returns
// the token (shown once: only its hash is kept). A token with the admin
// role needs a recent second factor.
func (s *Service) CreateToken(ctx context.Context, p *Principal, req CreateTokenRequest) (APIToken, string, error) {
	return s.createToken(ctx, p.User, p.Role, p.Actor(), p.Meta, req, func() error {
		if req.Role == RoleAdmin || (req.Role == "" && p.Role == RoleAdmin) {
			if !p.RecentMFA(s.now(), s.cfg.StepUp) {
				return ErrStepUp
			}
		}
		return nil
	})
}

// CreateTokenFor issues a token for u without a session: the host-side
// break-glass path (`platform users ... --token`), audited as actor.
func (s *Service) CreateTokenFor(ctx context.Context, u User, actor string, m Meta, req CreateTokenRequest) (APIToken, string, error) {
	return s.createToken(ctx, u, u.Role, actor, m, req, nil)
}

func (s *Service) createToken(ctx context.Context, u User, max Role, actor string, m Meta, req CreateTokenRequest, check func() error) (APIToken, string, error) {
	if req.Name == "" || utf8.RuneCountInString(req.Name) > 64 || termsafe.IndexEscaped(req.Name) >= 0 {
		return APIToken{}, "", fmt.Errorf("%w: a token needs a name of at most 64 printable characters", ErrInvalid)
	}
	if req.Role == "" {
		req.Role = max
	}
	if !req.Role.AtMost(max) {
		return APIToken{}, "", fmt.Errorf("%w: a token's role (%s) cannot be above yours (%s)", ErrForbidden, req.Role, max)
	}
	if req.TTL == 0 {
		req.TTL = s.cfg.TokenDefaultTTL
	}
	if req.TTL < time.Minute || req.TTL > s.cfg.TokenMaxTTL {
		return APIToken{}, "", fmt.Errorf("%w: a token lives between 1 minute and %s", ErrInvalid, s.cfg.TokenMaxTTL)
	}
	if check != nil {
		if err := check(); err != nil {
			return APIToken{}, "", err
		}
	}
	tok, err := crypto.NewToken(APITokenPrefix)
	if err != nil {
		return APIToken{}, "", err
	}
	now := s.now()
	t := APIToken{ID: NewID("tok"), UserID: u.ID, Name: req.Name, Role: req.Role, Hash: tokenHash(tok), CreatedAt: now, ExpiresAt: now.Add(req.TTL)}
	ev := EventFor(now, actor, "token.created", t.ID, m, map[string]any{"user": u.Login, "name": t.Name, "role": string(t.Role), "expires_at": t.ExpiresAt})
	if err := s.st.CreateToken(ctx, t, ev); err != nil {
		return APIToken{}, "", err
	}
	return t, tok, nil
}

// Tokens lists a user's tokens (never their values).
func (s *Service) Tokens(ctx context.Context, userID string) ([]APIToken, error) {
	return s.st.Tokens(ctx, userID)
}

// RevokeToken revokes a token of the principal's user, or any token for
// an admin.
func (s *Service) RevokeToken(ctx context.Context, p *Principal, id string) error {
	t, err := s.st.Token(ctx, id)
	if err != nil {
		return err
	}
	if t.UserID != p.User.ID && p.Role != RoleAdmin {
		return ErrNotFound // another user's token does not exist for you
	}
	ev := EventFor(s.now(), p.Actor(), "token.revoked", id, p.Meta, map[string]any{"name": t.Name})
	return s.st.RevokeToken(ctx, id, s.now(), ev)
}
