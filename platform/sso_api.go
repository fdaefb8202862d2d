package platform

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/access"
)

// Paths of single sign-on (docs/access.md). They belong in api/ with
// client methods once the admin client grows them.
const (
	// PathSSOLogin starts a sign-in at the provider (the sign-in page
	// links to it).
	PathSSOLogin = "/auth/oidc/login"
	// PathSSOCallback is where the provider sends the browser back: the
	// redirect URL to register at the provider is <public URL> + this.
	PathSSOCallback = "/auth/oidc/callback"
	// PathSSOSettings reads (GET), sets (PUT) and removes (DELETE) the
	// settings: admins, setting and removing with a recent second factor.
	PathSSOSettings = "/api/v1/sso"
)

// codeSSOProvider: the provider did not answer as expected (502).
const codeSSOProvider = "sso_provider_error"

// SSOSettingsRequest is the body of PUT /api/v1/sso: the whole settings.
// ClientSecret may be left out to keep the stored one (same issuer and
// client ID).
type SSOSettingsRequest struct {
	Issuer         string            `json:"issuer"`
	ClientID       string            `json:"client_id"`
	ClientSecret   string            `json:"client_secret,omitempty"`
	AllowedDomains []string          `json:"allowed_domains,omitempty"`
	RequiredClaim  string            `json:"required_claim,omitempty"`
	GroupsClaim    string            `json:"groups_claim,omitempty"`
	GroupRoles     map[string]string `json:"group_roles"`
	Scopes         []string          `json:"scopes,omitempty"`
	CABundle       string            `json:"ca_bundle,omitempty"`
}

// Settings converts the request (roles checked by Validate).
func (q SSOSettingsRequest) Settings() access.SSOSettings {
	c := access.SSOSettings{Issuer: q.Issuer, ClientID: q.ClientID, ClientSecret: q.ClientSecret, AllowedDomains: q.AllowedDomains,
		RequiredClaim: q.RequiredClaim, GroupsClaim: q.GroupsClaim, GroupRoles: map[string]access.Role{}, Scopes: q.Scopes, CABundle: q.CABundle}
	for g, r := range q.GroupRoles {
		c.GroupRoles[g] = access.Role(r)
	}
	return c
}

// SSOSettingsView is what GET /api/v1/sso shows: never the client secret
// ("set" once stored).
type SSOSettingsView struct {
	Enabled        bool              `json:"enabled"`
	RedirectURL    string            `json:"redirect_url"`
	Issuer         string            `json:"issuer,omitempty"`
	ClientID       string            `json:"client_id,omitempty"`
	ClientSecret   string            `json:"client_secret,omitempty"`
	AllowedDomains []string          `json:"allowed_domains,omitempty"`
	RequiredClaim  string            `json:"required_claim,omitempty"`
	GroupsClaim    string            `json:"groups_claim,omitempty"`
	GroupRoles     map[string]string `json:"group_roles,omitempty"`
	Scopes         []string          `json:"scopes,omitempty"`
	CABundle       string            `json:"ca_bundle,omitempty"`
	UpdatedAt      *time.Time        `json:"updated_at,omitempty"`
}

// SSOView shows settings as GET /api/v1/sso and `platform sso show` do.
func SSOView(c access.SSOSettings, redirectURL string) SSOSettingsView {
	v := SSOSettingsView{Enabled: true, RedirectURL: redirectURL, Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: "set",
		AllowedDomains: c.AllowedDomains, RequiredClaim: c.RequiredClaim, GroupsClaim: c.GroupsClaim, GroupRoles: map[string]string{},
		Scopes: c.Scopes, CABundle: c.CABundle, UpdatedAt: &c.UpdatedAt}
	for g, r := range c.GroupRoles {
		v.GroupRoles[g] = string(r)
	}
	return v
}

// OpenSSO returns single sign-on over the account service as the server
// builds it (its redirect URL from cfg's public URL): for `platform sso`
// on the host and tests.
func OpenSSO(cfg Config, svc *access.Service) (*access.SSO, error) {
	u, err := cfg.publicURL()
	if err != nil {
		return nil, &ConfigError{Field: "public-url", Reason: err.Error()}
	}
	return access.NewSSO(svc, u.String()+PathSSOCallback), nil
}

// ssoRoutes registers the sign-in flow (public: the browser is not signed
// in yet) and the admin settings.
func (s *Server) ssoRoutes(public func(string, handlerFunc), admin func(string, handlerFunc, ...routeOpt)) {
	public("GET "+PathSSOLogin, s.ssoBegin)
	public("GET "+PathSSOCallback, s.ssoCallback)
	admin("GET "+PathSSOSettings, s.showSSO)
	admin("PUT "+PathSSOSettings, s.putSSO, stepUp)
	admin("DELETE "+PathSSOSettings, s.deleteSSO, stepUp)
}

// The flow cookie is SameSite=Lax, not Strict: the provider sends the
// browser back with a top-level GET from its own site, and a Strict cookie
// would not come with it. Lax cookies go only with top-level GETs from
// other sites, and the callback changes nothing before it has checked the
// state against the cookie.
func setFlowCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{Name: access.SSOFlowCookieName, Value: value, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(access.SSOFlowLifetime / time.Second)})
}

func clearFlowCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: access.SSOFlowCookieName, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// ssoBegin sends the browser to the provider with a new flow bound to it.
func (s *Server) ssoBegin(w http.ResponseWriter, r *http.Request) error {
	authURL, cookie, err := s.sso.Begin(r.Context(), localPath(r.URL.Query().Get("next")))
	if err != nil {
		s.ssoErrorPage(w, r, err)
		return nil
	}
	setFlowCookie(w, cookie)
	http.Redirect(w, r, authURL, http.StatusSeeOther)
	return nil
}

// ssoCallback finishes the sign-in. The flow cookie is cleared whatever
// happens: a flow is tried once.
func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) error {
	cookie := ""
	if c, err := r.Cookie(access.SSOFlowCookieName); err == nil {
		cookie = c.Value
	}
	clearFlowCookie(w)
	cb, err := access.ParseSSOCallback(r.URL.RawQuery)
	if err != nil {
		s.console.Error(w, nil, http.StatusBadRequest, "Single sign-on failed", err.Error()+": start again from the sign-in page.")
		return nil
	}
	in, next, err := s.sso.Finish(r.Context(), cookie, cb, access.MetaOf(r))
	if err != nil {
		s.ssoErrorPage(w, r, err)
		return nil
	}
	s.checkpointAudit(context.WithoutCancel(r.Context()))
	setCookie(w, access.SessionCookieName, in.Token, s.accessCfg.SessionAbsolute)
	if in.DeviceCookie != "" {
		setCookie(w, access.DeviceCookieName, in.DeviceCookie, 365*24*time.Hour)
	}
	continuePage(w, ssoNextPath(in.Session.Stage, next))
	return nil
}

// ssoErrorPage answers a failed sign-in as a page (the person is in a
// browser, coming from the provider).
func (s *Server) ssoErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	var se *access.SSOError
	switch {
	case errors.As(err, &se) && se.Policy:
		s.console.Error(w, nil, http.StatusForbidden, "Single sign-on refused", se.Reason+".")
	case errors.As(err, &se):
		s.console.Error(w, nil, http.StatusUnauthorized, "Single sign-on failed", se.Reason+".")
	case errors.Is(err, access.ErrSSODisabled):
		s.console.Error(w, nil, http.StatusNotFound, "Single sign-on is off", "Single sign-on is not set up on this platform: sign in with your login and password.")
	case errors.Is(err, access.ErrSSOProvider):
		s.log.Warn("single sign-on provider failed", "err", err)
		s.console.Error(w, nil, http.StatusBadGateway, "Single sign-on unavailable", "The single sign-on provider did not answer as expected: try again later, or tell an admin (the platform log says why).")
	default:
		s.log.Error("single sign-on failed", "route", r.Pattern, "err", err)
		s.console.Error(w, nil, http.StatusInternalServerError, "Error", "internal error; see the platform log")
	}
}

// continuePage goes on to next from a page of this site. The callback is
// a navigation from the provider's site, and so is a redirect it answers:
// the browser would not send the SameSite=Strict session cookie just set
// with it, and the person would land on the sign-in page. A navigation
// this page starts is same-site, and the cookie goes with it.
func continuePage(w http.ResponseWriter, next string) {
	var buf bytes.Buffer
	continueTmpl.Execute(&buf, next)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	buf.WriteTo(w)
}

var continueTmpl = template.Must(template.New("continue").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="0;url={{.}}">
<title>Signed in · Collector</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<main class="narrow" id="main">
<h1>Signed in</h1>
<p><a class="button" id="continue" href="{{.}}">Continue</a></p>
</main>
</body>
</html>
`))

// ssoNextPath is where a new session at stage goes: its second factor,
// its enrolment, or next.
func ssoNextPath(stage, next string) string {
	switch stage {
	case access.StageMFA:
		return "/login/mfa?next=" + url.QueryEscape(next)
	case access.StageEnroll:
		return "/mfa/enroll"
	}
	return next
}

// localPath returns next if it is a path of this site, else "/": a
// sign-in never sends the browser to another site.
func localPath(next string) string {
	u, err := url.Parse(next)
	if next == "" || len(next) > 1024 || err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(next, "/") ||
		strings.HasPrefix(next, "//") || strings.Contains(next, `\`) || !termsafe.Printable(next) {
		return "/"
	}
	return next
}

func (s *Server) showSSO(w http.ResponseWriter, r *http.Request) error {
	c, err := s.sso.Settings(r.Context())
	if errors.Is(err, access.ErrSSODisabled) {
		writeJSON(w, http.StatusOK, SSOSettingsView{RedirectURL: s.sso.RedirectURL()})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, SSOView(c, s.sso.RedirectURL()))
	return nil
}

// putSSO checks the provider (discovery over the trusted TLS) before it
// stores the settings: a typo does not switch single sign-on off.
func (s *Server) putSSO(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, func(rd io.Reader) (SSOSettingsRequest, error) {
		var v SSOSettingsRequest
		return v, api.Decode(rd, &v)
	})
	if err != nil {
		return err
	}
	c := req.Settings()
	if err := s.sso.Check(r.Context(), c); err != nil {
		return ssoAPIError(err)
	}
	p := principal(r)
	stored, err := s.sso.Put(r.Context(), c, p.Actor(), p.Meta)
	if err != nil {
		return ssoAPIError(err)
	}
	s.log.Info("single sign-on settings changed", "issuer", stored.Issuer, "client_id", stored.ClientID, "actor", p.Actor())
	writeJSON(w, http.StatusOK, SSOView(stored, s.sso.RedirectURL()))
	return nil
}

func (s *Server) deleteSSO(w http.ResponseWriter, r *http.Request) error {
	if err := s.noBody(w, r); err != nil {
		return err
	}
	p := principal(r)
	if err := s.sso.Disable(r.Context(), p.Actor(), p.Meta); err != nil {
		return ssoAPIError(err)
	}
	s.log.Info("single sign-on disabled", "actor", p.Actor())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func ssoAPIError(err error) error {
	switch {
	case errors.Is(err, access.ErrSSODisabled):
		return errorf(http.StatusNotFound, api.CodeNotFound, "%v", err)
	case errors.Is(err, access.ErrSSOProvider):
		return errorf(http.StatusBadGateway, codeSSOProvider, "%v", err)
	}
	return accessError(err)
}
