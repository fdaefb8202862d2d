package access

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/collectorhq/collector/internal/termsafe"
)

// Principal is who a request acts for, and through what.
type Principal struct {
	User User
	// Role is what the request may do: the user's role, or the token's if
	// lower.
	Role    Role
	Session *Session  // set for a browser session
	Token   *APIToken // set for an API token
	Meta    Meta
}

// Actor names the principal in the audit log: "user:<login>", or
// "token:<id> (user:<login>)" for an API token, with the provider's
// subject for a single sign-on session.
func (p *Principal) Actor() string {
	switch {
	case p == nil:
		return "anonymous"
	case p.Token != nil:
		return fmt.Sprintf("token:%s (user:%s)", p.Token.ID, p.User.Login)
	case p.Session != nil && p.Session.SSOSubject != "":
		return fmt.Sprintf("user:%s (sso:%s)", p.User.Login, p.Session.SSOSubject)
	}
	return "user:" + p.User.Login
}

// Full reports whether the principal may use more than the second-factor
// pages.
func (p *Principal) Full() bool {
	return p.Token != nil || (p.Session != nil && p.Session.Stage == StageFull)
}

// RecentMFA reports whether a second factor was verified within d: the
// step-up a destructive act needs. API tokens never pass it by
// themselves; their creation did.
func (p *Principal) RecentMFA(now time.Time, d time.Duration) bool {
	return p.Session != nil && !p.Session.MFAAt.IsZero() && now.Sub(p.Session.MFAAt) <= d
}

// MetaOf reads a request's client address and user agent.
func MetaOf(r *http.Request) Meta {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return Meta{Source: host, UserAgent: termsafe.Clip(r.UserAgent(), 256)}
}

// bearer returns an Authorization: Bearer token.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > 512 {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// sessionTouchEvery bounds the writes of LastSeenAt (idle timeout).
const sessionTouchEvery = time.Minute

// Authenticate returns the principal of a request: an API token
// (Authorization: Bearer cpat_...) or a session cookie. A disabled user,
// an expired or revoked token, an idle or ended session: ErrUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	m := MetaOf(r)
	if tok, ok := bearer(r); ok {
		if !strings.HasPrefix(tok, APITokenPrefix) {
			return nil, ErrUnauthenticated
		}
		return s.authToken(ctx, tok, m)
	}
	c, err := r.Cookie(SessionCookieName)
	if err != nil || !strings.HasPrefix(c.Value, sessionPrefix) || len(c.Value) > 128 {
		return nil, ErrUnauthenticated
	}
	return s.authSession(ctx, c.Value, m)
}

func (s *Service) authToken(ctx context.Context, tok string, m Meta) (*Principal, error) {
	t, err := s.st.TokenByHash(ctx, tokenHash(tok))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !t.RevokedAt.IsZero() || !now.Before(t.ExpiresAt) {
		return nil, ErrUnauthenticated
	}
	u, err := s.activeUser(ctx, t.UserID)
	if err != nil {
		return nil, err
	}
	role := t.Role
	if !role.AtMost(u.Role) {
		role = u.Role
	}
	s.touchToken(ctx, t.ID, now)
	return &Principal{User: u, Role: role, Token: &t, Meta: m}, nil
}

func (s *Service) authSession(ctx context.Context, tok string, m Meta) (*Principal, error) {
	sess, err := s.st.SessionByHash(ctx, tokenHash(tok))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) > s.cfg.SessionIdle {
		s.st.DeleteSession(ctx, sess.Hash, nil)
		return nil, ErrUnauthenticated
	}
	u, err := s.activeUser(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	if now.Sub(sess.LastSeenAt) >= sessionTouchEvery {
		s.st.TouchSession(ctx, sess.Hash, now)
	}
	return &Principal{User: u, Role: u.Role, Session: &sess, Meta: m}, nil
}

// activeUser returns the user if it exists and is not disabled.
func (s *Service) activeUser(ctx context.Context, id string) (User, error) {
	u, err := s.st.User(ctx, id)
	if errors.Is(err, ErrNotFound) || err == nil && u.Disabled {
		return User{}, ErrUnauthenticated
	}
	return u, err
}

// touchToken records a token's last use, at most once a minute.
func (s *Service) touchToken(ctx context.Context, id string, now time.Time) {
	s.touchMu.Lock()
	last := s.lastTouch[id]
	if now.Sub(last) < time.Minute {
		s.touchMu.Unlock()
		return
	}
	s.lastTouch[id] = now
	s.touchMu.Unlock()
	if err := s.st.TouchToken(ctx, id, now); err != nil {
		s.log.Warn("recording a token's last use failed", "token", id, "err", err)
	}
}
