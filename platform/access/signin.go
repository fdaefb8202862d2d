package access

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/store"
)

// SessionCookieName is the session cookie's name (__Host-: Secure, no
// Domain, Path=/; set HttpOnly and SameSite=Strict).
const SessionCookieName = "__Host-collector-session"

// SignedIn is the result of a sign-in step: the session to set as the
// cookie, and what the user must do next.
type SignedIn struct {
	User    User
	Session Session
	// Token is the session cookie's value (shown nowhere else).
	Token string
	// DeviceCookie is the device cookie to set (a known browser next time).
	DeviceCookie string
}

// EventFor builds an audit event with the request's source and agent.
func EventFor(at time.Time, actor, action, target string, m Meta, details map[string]any) store.Event {
	return store.Event{Time: at, Actor: actor, Action: action, Target: target, Details: m.details(details)}
}

// SignIn checks a login and password. Every refusal is ErrBadCredentials
// (whether the login exists, the password is wrong, or the user is
// disabled, with the same cost: a missing user's hash is a dummy of the
// same parameters) or a *ThrottledError; failures are counted and audited.
// On success the session is full, or waits for a second factor (Stage).
func (s *Service) SignIn(ctx context.Context, login, password, deviceCookie string, m Meta) (*SignedIn, error) {
	norm, err := NormalizeLogin(login)
	if err != nil {
		norm = "(invalid)"
	}
	keys := s.throttleKeys(norm, s.deviceID(deviceCookie, norm), m)
	if err := s.checkThrottle(ctx, keys); err != nil {
		return nil, err
	}
	u, uerr := s.st.UserByLogin(ctx, norm)
	if uerr != nil && !errors.Is(uerr, ErrNotFound) {
		return nil, uerr
	}
	hash := u.PasswordHash
	if uerr != nil || len(password) > MaxPasswordBytes {
		hash = ""
	}
	ok, err := s.hasher.verify(ctx, password, hash)
	if err != nil {
		return nil, err
	}
	reason := ""
	switch {
	case uerr != nil:
		reason = "unknown login"
	case u.PasswordHash == "":
		reason = "no password (single sign-on user)"
	case !ok:
		reason = "wrong password"
	case u.Disabled:
		reason = "user disabled"
	}
	if reason != "" {
		s.recordFailure(ctx, keys)
		ev := EventFor(s.now(), "anonymous", "user.sign_in_failed", u.ID, m, map[string]any{"login": termsafe.Clip(login, 256), "reason": reason})
		if err := s.st.AppendAudit(ctx, ev); err != nil {
			s.log.Warn("auditing a failed sign-in failed", "err", err)
		}
		return nil, ErrBadCredentials
	}
	s.clearAfterSuccess(ctx, keys)
	if NeedsRehash(u.PasswordHash, s.cfg.Password) {
		if h, err := s.hasher.hash(ctx, password); err == nil {
			u.PasswordHash = h
			ev := EventFor(s.now(), "user:"+u.Login, "user.password_rehashed", u.ID, m, nil)
			if err := s.st.UpdateUser(ctx, u, false, ev); err != nil {
				s.log.Warn("raising a password hash's cost failed", "user", u.ID, "err", err)
			}
		}
	}
	return s.startSession(ctx, u, "password", "", m)
}

// startSession opens a session for u at the stage its second factors
// call for.
func (s *Service) startSession(ctx context.Context, u User, method, ssoSubject string, m Meta) (*SignedIn, error) {
	mfa, err := s.st.MFA(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	stage := StageFull
	switch {
	case mfa.Enrolled():
		stage = StageMFA
	case s.mfaRequired(u):
		stage = StageEnroll
	}
	now := s.now()
	tok, err := crypto.NewToken(sessionPrefix)
	if err != nil {
		return nil, err
	}
	sess := Session{Hash: tokenHash(tok), UserID: u.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.SessionAbsolute),
		Stage: stage, Method: method, SSOSubject: ssoSubject, Source: m.Source, UserAgent: termsafe.Clip(m.UserAgent, 256)}
	ev := EventFor(now, "user:"+u.Login, "user.signed_in", u.ID, m, map[string]any{"method": method, "stage": stage, "sso_subject": ssoSubject})
	if err := s.st.CreateSession(ctx, sess, &ev); err != nil {
		return nil, err
	}
	return &SignedIn{User: u, Session: sess, Token: tok, DeviceCookie: s.NewDeviceCookie(u.Login)}, nil
}

// mfaRequired reports whether u must have a second factor.
func (s *Service) mfaRequired(u User) bool { return u.Role == RoleAdmin || s.cfg.RequireMFAForAll }

// SignOut ends one session.
func (s *Service) SignOut(ctx context.Context, p *Principal, m Meta) error {
	if p.Session == nil {
		return fmt.Errorf("%w: only a browser session signs out; revoke a token instead", ErrInvalid)
	}
	ev := EventFor(s.now(), p.Actor(), "user.signed_out", p.User.ID, m, nil)
	return s.st.DeleteSession(ctx, p.Session.Hash, &ev)
}

// SignOutEverywhere ends every session of the user but the caller's own.
func (s *Service) SignOutEverywhere(ctx context.Context, p *Principal, m Meta) (int, error) {
	keep := ""
	if p.Session != nil {
		keep = p.Session.Hash
	}
	ev := EventFor(s.now(), p.Actor(), "user.signed_out_everywhere", p.User.ID, m, nil)
	return s.st.DeleteSessions(ctx, p.User.ID, keep, ev)
}

// rotate replaces a session by a new one at stage with mfaAt: after a
// second factor, or an enrolment.
func (s *Service) rotate(ctx context.Context, old Session, stage string, mfaAt time.Time, ev *store.Event) (*Session, string, error) {
	tok, err := crypto.NewToken(sessionPrefix)
	if err != nil {
		return nil, "", err
	}
	n := old
	n.Hash, n.Stage, n.MFAAt, n.LastSeenAt = tokenHash(tok), stage, mfaAt, s.now()
	if err := s.st.RotateSession(ctx, old.Hash, n, ev); err != nil {
		return nil, "", err
	}
	return &n, tok, nil
}
