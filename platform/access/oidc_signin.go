package access

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/termsafe"
)

// ErrSSORefused: a single sign-on was refused; the *SSOError says why.
var ErrSSORefused = errors.New("single sign-on refused")

// SSOError is a refused single sign-on. Reason is shown to the person and
// audited (it names no secret). Policy is set when the platform's rules
// refused an identity the provider vouched for (email domain, required
// claim, groups, a disabled or unlinked account: 403), rather than a
// check of the flow or the token failing (401).
type SSOError struct {
	Reason string
	Policy bool
}

func (e *SSOError) Error() string { return "single sign-on refused: " + e.Reason }

// Is makes errors.Is(err, ErrSSORefused) true.
func (e *SSOError) Is(target error) bool { return target == ErrSSORefused }

func refusal(format string, args ...any) *SSOError {
	return &SSOError{Reason: fmt.Sprintf(format, args...)}
}

func policyRefusal(format string, args ...any) *SSOError {
	return &SSOError{Reason: fmt.Sprintf(format, args...), Policy: true}
}

// ssoIdentity is what a verified ID token says about the person.
type ssoIdentity struct {
	issuer, subject, email, login, name string
	groups                              []string
	role                                Role
}

// Finish completes a sign-in at the callback: it checks the flow cookie
// and the state, exchanges the code with the PKCE verifier, verifies the
// ID token (signature by the provider's keys, issuer, audience, expiry,
// nonce), applies the email domain, required claim and group rules, then
// creates the user or updates its role and opens a session (method "sso",
// at the stage its second factors call for). It returns the sign-in and
// where to go next. Every refusal is an *SSOError, audited.
func (s *SSO) Finish(ctx context.Context, cookie string, cb SSOCallback, m Meta) (*SignedIn, string, error) {
	f, ok := s.openFlow(cookie)
	if !ok {
		return nil, "", s.refused(ctx, m, "", "", refusal("no sign-in was started in this browser (or it was already finished): start again from the sign-in page"))
	}
	id, err := s.checkCallback(ctx, f, cb)
	if err != nil {
		return nil, "", s.refused(ctx, m, id.subject, "", err)
	}
	u, err := s.account(ctx, id, m)
	if err != nil {
		return nil, "", s.refused(ctx, m, id.subject, u.ID, err)
	}
	in, err := s.svc.startSession(ctx, u, SSOMethod, id.subject, m)
	if err != nil {
		return nil, "", err
	}
	return in, f.Next, nil
}

// checkCallback runs every check up to a verified identity, in order.
func (s *SSO) checkCallback(ctx context.Context, f ssoFlow, cb SSOCallback) (ssoIdentity, error) {
	now := s.svc.now()
	if !now.Before(time.Unix(f.Expires, 0)) {
		return ssoIdentity{}, refusal("the sign-in took longer than %s: start again", ssoFlowLifetime)
	}
	if !equal(cb.State, f.State) {
		return ssoIdentity{}, refusal("the state does not match the sign-in this browser started (a callback of another sign-in, or of another browser)")
	}
	if cb.Error != "" {
		msg := "the provider refused the sign-in: " + cb.Error
		if cb.ErrorDescription != "" {
			msg += " (" + cb.ErrorDescription + ")"
		}
		return ssoIdentity{}, refusal("%s", msg)
	}
	c, err := s.Settings(ctx)
	if err != nil {
		return ssoIdentity{}, err
	}
	if c.fingerprint() != f.Settings {
		return ssoIdentity{}, refusal("the single sign-on settings changed during the sign-in: start again")
	}
	if cb.Issuer != "" && cb.Issuer != c.Issuer {
		return ssoIdentity{}, refusal("the callback names the issuer %q, not %q (a response of another provider)", cb.Issuer, c.Issuer)
	}
	// Once per flow, before the code goes anywhere: a replayed callback
	// is refused here even if a provider would exchange a code twice.
	err = s.svc.st.UseSSOFlow(ctx, crypto.HashToken("sso-flow:"+f.State), time.Unix(f.Expires, 0), now)
	if errors.Is(err, ErrConflict) {
		return ssoIdentity{}, refusal("this sign-in was already completed: a callback is used once")
	}
	if err != nil {
		return ssoIdentity{}, err
	}
	claims, idt, err := s.exchange(ctx, c, f, cb.Code)
	if err != nil {
		return ssoIdentity{}, err
	}
	return identity(c, idt.Issuer, idt.Subject, claims)
}

// exchange trades the code (with the PKCE verifier and the client secret)
// for tokens and verifies the ID token; it returns its claims.
func (s *SSO) exchange(ctx context.Context, c SSOSettings, f ssoFlow, code string) (map[string]any, *oidc.IDToken, error) {
	p, err := s.provider(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	secret, err := s.secret(c)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithValue(oidc.ClientContext(ctx, p.hc), oauth2.HTTPClient, p.hc), ssoHTTPTimeout)
	defer cancel()
	tok, err := s.oauth2Config(c, p, secret).Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return nil, nil, refusal("the provider refused the code: %s %s", re.ErrorCode, termsafe.Clip(re.ErrorDescription, 200))
		}
		return nil, nil, fmt.Errorf("%w: token request: %v", ErrSSOProvider, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, nil, refusal("the provider returned no ID token")
	}
	now := s.svc.now()
	idt, err := p.provider.Verifier(&oidc.Config{ClientID: c.ClientID, Now: s.svc.now}).Verify(ctx, raw)
	var te *oidc.TokenExpiredError
	switch {
	case errors.As(err, &te):
		return nil, nil, refusal("the ID token expired at %s", te.Expiry.UTC().Format(time.RFC3339))
	case err != nil:
		return nil, nil, refusal("the ID token failed verification: %v", err)
	case idt.Nonce == "":
		return nil, nil, refusal("the ID token carries no nonce")
	case !equal(idt.Nonce, f.Nonce):
		return nil, nil, refusal("the ID token's nonce is not this sign-in's")
	case idt.IssuedAt.After(now.Add(ssoMaxIssuedSkew)):
		return nil, nil, refusal("the ID token was issued in the future (%s): check the clocks", idt.IssuedAt.UTC().Format(time.RFC3339))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, nil, refusal("the ID token's claims do not parse")
	}
	// OpenID Connect Core 3.1.3.7: with several audiences, the authorized
	// party must be this client.
	if azp, _ := claims["azp"].(string); len(idt.Audience) > 1 && azp != c.ClientID {
		return nil, nil, refusal("the ID token is for several audiences and not authorized for this client (azp %q)", azp)
	}
	return claims, idt, nil
}

// identity applies the settings' rules to the claims of a verified ID
// token.
func identity(c SSOSettings, issuer, subject string, claims map[string]any) (ssoIdentity, error) {
	id := ssoIdentity{issuer: issuer, subject: subject}
	if !printable(id.subject, 255) {
		return ssoIdentity{}, refusal("the ID token's subject is empty, too long or not printable")
	}
	id.email, _ = claims["email"].(string)
	if len(c.AllowedDomains) > 0 {
		verified, _ := claimBool(claims["email_verified"])
		at := strings.LastIndexByte(id.email, '@')
		switch {
		case id.email == "" || at < 0:
			return id, policyRefusal("the provider sent no email address, and only addresses of %s may sign in", strings.Join(c.AllowedDomains, ", "))
		case !verified:
			return id, policyRefusal("the provider does not say the email address %s is verified", id.email)
		case !contains(c.AllowedDomains, strings.ToLower(id.email[at+1:])):
			return id, policyRefusal("the email domain %s is not allowed to sign in here", strings.ToLower(id.email[at+1:]))
		}
	}
	if c.RequiredClaim != "" {
		name, value, _ := strings.Cut(c.RequiredClaim, "=")
		if !claimMatches(claims[name], value) {
			return id, policyRefusal("the ID token lacks the required claim %s", c.RequiredClaim)
		}
	}
	groups, ok := claimStrings(claims[c.GroupsClaim])
	if !ok {
		return id, policyRefusal("the ID token's %q claim is not a list of group names", c.GroupsClaim)
	}
	id.groups = groups
	if id.role = c.RoleFor(groups); id.role == "" {
		return id, policyRefusal("none of your groups at the provider (claim %q) maps to a role here: ask an admin", c.GroupsClaim)
	}
	pref, _ := claims["preferred_username"].(string)
	for _, cand := range []string{pref, id.email} {
		if n, err := NormalizeLogin(cand); cand != "" && err == nil {
			id.login = n
			break
		}
	}
	if id.login == "" {
		return id, refusal("the ID token has neither a preferred_username nor an email usable as a login")
	}
	id.name, _ = claims["name"].(string)
	if id.name == "" || CheckDisplayName(id.name) != nil {
		id.name = id.login
	}
	return id, nil
}

// account returns the user of the identity: the one linked to its issuer
// and subject (its role set from the groups: a change re-authenticates
// it, as SetRole does), or a new one. An existing account of the same
// login is never taken over: an admin links it.
func (s *SSO) account(ctx context.Context, id ssoIdentity, m Meta) (User, error) {
	now := s.svc.now()
	actor := "sso:" + id.issuer
	u, err := s.svc.st.UserBySSO(ctx, id.issuer, id.subject)
	switch {
	case errors.Is(err, ErrNotFound):
		return s.createSSOUser(ctx, id, actor, m)
	case err != nil:
		return User{}, err
	case u.Disabled:
		return u, policyRefusal("your account here is disabled")
	case u.Role == id.role:
		return u, nil
	}
	old := u.Role
	u.Role, u.UpdatedAt = id.role, now
	ev := EventFor(now, actor, "user.role_changed", u.ID, m, map[string]any{"login": u.Login, "from": string(old), "to": string(id.role),
		"reason": "groups at the provider", "groups": firstGroups(id.groups), "sso_subject": id.subject})
	if err := s.svc.st.UpdateUser(ctx, u, true, ev); err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *SSO) createSSOUser(ctx context.Context, id ssoIdentity, actor string, m Meta) (User, error) {
	taken := policyRefusal("the login %q belongs to an account here that is not linked to this single sign-on identity: ask an admin to link it (platform sso link %s %s)",
		id.login, id.login, id.subject)
	if _, err := s.svc.st.UserByLogin(ctx, id.login); err == nil {
		return User{}, taken
	} else if !errors.Is(err, ErrNotFound) {
		return User{}, err
	}
	now := s.svc.now()
	u := User{ID: NewID("usr"), Login: id.login, DisplayName: id.name, Role: id.role, SSOIssuer: id.issuer, SSOSubject: id.subject,
		CreatedAt: now, UpdatedAt: now}
	ev := EventFor(now, actor, "user.created", u.ID, m, map[string]any{"login": u.Login, "role": string(u.Role), "method": SSOMethod,
		"sso_subject": id.subject, "issuer": id.issuer, "groups": firstGroups(id.groups)})
	if err := s.svc.st.CreateUser(ctx, u, ev); errors.Is(err, ErrConflict) {
		return User{}, taken // a sign-in of the same login won the race
	} else if err != nil {
		return User{}, err
	}
	return u, nil
}

// refused audits and logs a sign-in that failed with err (a refusal, a
// provider that did not answer, single sign-on switched off meanwhile)
// and returns err; other errors (the store's) are the caller's to log.
func (s *SSO) refused(ctx context.Context, m Meta, subject, userID string, err error) error {
	var se *SSOError
	reason := ""
	switch {
	case errors.As(err, &se):
		reason = se.Reason
	case errors.Is(err, ErrSSOProvider), errors.Is(err, ErrSSODisabled):
		reason = err.Error()
	default:
		return err
	}
	ev := EventFor(s.svc.now(), "anonymous", "user.sign_in_failed", userID, m, map[string]any{"method": SSOMethod, "reason": reason, "sso_subject": subject})
	if aerr := s.svc.st.AppendAudit(ctx, ev); aerr != nil {
		s.svc.log.Warn("auditing a refused single sign-on failed", "err", aerr)
	}
	s.svc.log.Info("single sign-on refused", "reason", reason, "sso_subject", subject, "source", m.Source)
	return err
}

// Link ties an existing account to a single sign-on identity of the
// configured provider (subject): its next single sign-on signs in to it,
// its role following the groups from then on. Audited; the account's
// sessions and tokens are kept.
func (s *SSO) Link(ctx context.Context, userID, subject, actor string, m Meta) (User, error) {
	c, err := s.Settings(ctx)
	if err != nil {
		return User{}, err
	}
	if !printable(subject, 255) {
		return User{}, fmt.Errorf("%w: subject must be printable, at most 255 bytes", ErrInvalid)
	}
	u, err := s.svc.st.User(ctx, userID)
	if err != nil {
		return User{}, err
	}
	if other, err := s.svc.st.UserBySSO(ctx, c.Issuer, subject); err == nil && other.ID != u.ID {
		return User{}, fmt.Errorf("%w: the subject %q is linked to the user %s already", ErrConflict, subject, other.Login)
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, err
	}
	u.SSOIssuer, u.SSOSubject, u.UpdatedAt = c.Issuer, subject, s.svc.now()
	ev := EventFor(u.UpdatedAt, actor, "user.sso_linked", u.ID, m, map[string]any{"login": u.Login, "issuer": c.Issuer, "sso_subject": subject})
	if err := s.svc.st.UpdateUser(ctx, u, false, ev); err != nil {
		return User{}, err
	}
	return u, nil
}

// firstGroups bounds the groups an audit entry lists.
func firstGroups(g []string) []string {
	if len(g) > 20 {
		return g[:20]
	}
	return g
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// claimBool reads a boolean claim (some providers send "true").
func claimBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(x)
		return b, err == nil
	}
	return false, false
}

// claimStrings reads a list of strings (a single string is a list of
// one; an absent claim is an empty list).
func claimStrings(v any) ([]string, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case string:
		return []string{x}, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// claimMatches reports whether a claim has the value (a list: among its
// values; a number or boolean: as written in JSON).
func claimMatches(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case bool:
		return strconv.FormatBool(x) == want
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64) == want
	case []any:
		for _, e := range x {
			if claimMatches(e, want) {
				return true
			}
		}
	}
	return false
}
