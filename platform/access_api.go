package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
)

// SetupLinkFile holds the one-time setup link of a platform with no user
// yet (0600, in the data dir): whoever has it creates the first admin.
const SetupLinkFile = "setup-link"

// ensureSetupLink makes, on a start with no user, a one-time setup link,
// writes it to the data dir (0600) and prints it: the way to create the
// first admin. Each start with no user replaces the link; once a user
// exists, the file is removed.
func (s *Server) ensureSetupLink(ctx context.Context) error {
	path := filepath.Join(s.cfg.DataDir, SetupLinkFile)
	tok, err := s.access.NewSetupToken(ctx)
	if err != nil {
		return fmt.Errorf("setup link: %w", err)
	}
	if tok == "" {
		os.Remove(path)
		return nil
	}
	link := s.audience + "/setup?token=" + tok
	if err := writeFileAtomic(path, []byte(link+"\n")); err != nil {
		return fmt.Errorf("write setup link: %w", err)
	}
	s.log.Warn("no user yet: open the one-time setup link (valid 24 h) to create the first admin", "setup_link", link, "file", path)
	return nil
}

// SetupLink returns the current setup link ("" once the platform has a
// user).
func (s *Server) SetupLink() string {
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, SetupLinkFile))
	if err != nil {
		return ""
	}
	return string(trimNL(b))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// securityHeaders sets what every answer carries: no sniffing, no
// framing, HTTPS only, no referrer leaks, and a strict Content-Security-
// Policy (no inline script or style, nothing from another origin).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// setCookie sets a __Host- cookie: Secure, Path=/, no Domain, HttpOnly,
// SameSite=Strict.
func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge / time.Second)})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// signedIn sets the session (and device) cookies of a sign-in step and
// answers with what comes next.
func (s *Server) signedIn(w http.ResponseWriter, in *access.SignedIn) {
	setCookie(w, access.SessionCookieName, in.Token, s.accessCfg.SessionAbsolute)
	if in.DeviceCookie != "" {
		setCookie(w, access.DeviceCookieName, in.DeviceCookie, 365*24*time.Hour)
	}
	writeJSON(w, http.StatusOK, api.SignInResponse{Stage: in.Session.Stage, User: userView(in.User, nil)})
}

func userView(u access.User, m *access.MFA) api.User {
	v := api.User{ID: u.ID, Login: u.Login, DisplayName: u.DisplayName, Role: string(u.Role), Disabled: u.Disabled,
		SSO: u.SSOSubject != "", CreatedAt: u.CreatedAt}
	if m != nil {
		v.MFA = &api.MFAState{TOTP: m.TOTP, Passkeys: m.Passkeys, RecoveryCodes: m.RecoveryCodes}
	}
	return v
}

func tokenView(t access.APIToken) api.APIToken {
	v := api.APIToken{ID: t.ID, UserID: t.UserID, Name: t.Name, Role: string(t.Role), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
	if !t.LastUsedAt.IsZero() {
		v.LastUsedAt = &t.LastUsedAt
	}
	if !t.RevokedAt.IsZero() {
		v.RevokedAt = &t.RevokedAt
	}
	return v
}

// accessRoutes registers sign-in, the account's own endpoints and user
// administration.
func (s *Server) accessRoutes(public func(string, handlerFunc), user func(access.Permission, string, handlerFunc, ...routeOpt), admin func(string, handlerFunc, ...routeOpt)) {
	public("POST "+api.PathSetup, s.setup)
	public("POST "+api.PathLogin, s.login)
	user(access.PermSignedIn, "POST "+api.PathLogout, s.logout, partial)
	user(access.PermSignedIn, "POST "+api.PathLogoutAll, s.logoutAll)
	user(access.PermSignedIn, "GET "+api.PathMe, s.me, partial)
	user(access.PermSignedIn, "POST "+api.PathMFATOTP, s.verifyTOTP, partial)
	user(access.PermSignedIn, "POST "+api.PathMFARecovery, s.verifyRecovery, partial)
	user(access.PermSignedIn, "POST "+api.PathTOTPBegin, s.beginTOTP, partial)
	user(access.PermSignedIn, "POST "+api.PathTOTPConfirm, s.confirmTOTP, partial)
	user(access.PermSignedIn, "POST "+api.PathRecoveryCodes, s.newRecoveryCodes, stepUp)
	user(access.PermSignedIn, "GET "+api.PathMyTokens, s.myTokens)
	user(access.PermSignedIn, "POST "+api.PathMyTokens, s.createToken)
	user(access.PermSignedIn, "DELETE "+api.PathMyTokens+"/{id}", s.revokeToken)
	s.passkeyRoutes(user)
	s.ssoRoutes(public, admin)

	public("POST "+api.PathDeviceStart, s.deviceStart)
	public("POST "+api.PathDeviceToken, s.deviceToken)
	user(access.PermSignedIn, "POST "+api.PathDeviceApprove, s.deviceApprove)

	admin("GET "+api.PathUsers, s.listUsers)
	admin("POST "+api.PathUsers, s.createUser)
	admin("GET "+api.PathUsers+"/{id}", s.showUser)
	admin("POST "+api.PathUsers+"/{id}/role", s.setRole, stepUp)
	admin("POST "+api.PathUsers+"/{id}/disable", s.disableUser, stepUp)
	admin("POST "+api.PathUsers+"/{id}/enable", s.enableUser)
	admin("POST "+api.PathUsers+"/{id}/reset-mfa", s.resetMFA, stepUp)
	admin("GET "+api.PathTokens, s.allTokens)
	admin("DELETE "+api.PathTokens+"/{id}", s.revokeToken)
	admin("GET "+api.PathThrottles, s.listThrottles)
	admin("DELETE "+api.PathThrottles, s.clearThrottle)
}

func (s *Server) setup(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.SetupRequest, error) {
		var v api.SetupRequest
		return v, api.Decode(rd, &v)
	})
	if err != nil {
		return err
	}
	in, err := s.access.CompleteSetup(r.Context(), req.Token, access.CreateUserRequest{Login: req.Login, DisplayName: req.DisplayName, Password: req.Password}, access.MetaOf(r))
	if err != nil {
		return accessError(err)
	}
	os.Remove(filepath.Join(s.cfg.DataDir, SetupLinkFile))
	s.log.Info("first admin created", "user", in.User.ID)
	s.checkpointAudit(context.WithoutCancel(r.Context()))
	s.signedIn(w, in)
	return nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.LoginRequest, error) {
		var v api.LoginRequest
		return v, api.Decode(rd, &v)
	})
	if err != nil {
		return err
	}
	device := ""
	if c, err := r.Cookie(access.DeviceCookieName); err == nil {
		device = c.Value
	}
	in, err := s.access.SignIn(r.Context(), req.Login, req.Password, device, access.MetaOf(r))
	if err != nil {
		return accessError(err)
	}
	s.signedIn(w, in)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if err := s.access.SignOut(r.Context(), principal(r), principal(r).Meta); err != nil {
		return accessError(err)
	}
	clearCookie(w, access.SessionCookieName)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) logoutAll(w http.ResponseWriter, r *http.Request) error {
	n, err := s.access.SignOutEverywhere(r.Context(), principal(r), principal(r).Meta)
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusOK, map[string]int{"sessions_ended": n})
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	m, err := s.access.MFA(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	out := api.Me{User: userView(p.User, &m), Role: string(p.Role)}
	if p.Session != nil {
		out.Stage = p.Session.Stage
		out.SessionExpiresAt = &p.Session.ExpiresAt
	}
	if p.Token != nil {
		t := tokenView(*p.Token)
		out.Token = &t
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type codeRequest struct {
	Code string `json:"code"`
}

func (s *Server) readCode(w http.ResponseWriter, r *http.Request) (string, error) {
	req, err := decode(s, w, r, func(rd io.Reader) (codeRequest, error) {
		var v codeRequest
		err := api.Decode(rd, &v)
		if err == nil && (v.Code == "" || len(v.Code) > 64) {
			err = fmt.Errorf("%w: code is required (at most 64 characters)", api.ErrInvalid)
		}
		return v, err
	})
	return req.Code, err
}

// rotated sets the session cookie a second factor rotated to.
func (s *Server) rotated(w http.ResponseWriter, cookie string) {
	if cookie != "" {
		setCookie(w, access.SessionCookieName, cookie, s.accessCfg.SessionAbsolute)
	}
}

func (s *Server) verifyTOTP(w http.ResponseWriter, r *http.Request) error {
	code, err := s.readCode(w, r)
	if err != nil {
		return err
	}
	cookie, err := s.access.VerifyTOTP(r.Context(), principal(r), code)
	if err != nil {
		return accessError(err)
	}
	s.rotated(w, cookie)
	writeJSON(w, http.StatusOK, api.SignInResponse{Stage: access.StageFull, User: userView(principal(r).User, nil)})
	return nil
}

func (s *Server) verifyRecovery(w http.ResponseWriter, r *http.Request) error {
	code, err := s.readCode(w, r)
	if err != nil {
		return err
	}
	cookie, err := s.access.VerifyRecoveryCode(r.Context(), principal(r), code)
	if err != nil {
		return accessError(err)
	}
	s.rotated(w, cookie)
	writeJSON(w, http.StatusOK, api.SignInResponse{Stage: access.StageFull, User: userView(principal(r).User, nil)})
	return nil
}

func (s *Server) beginTOTP(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	if p.Session != nil && p.Session.Stage == access.StageMFA {
		return errorf(http.StatusUnauthorized, api.CodeMFARequired, "verify your second factor first")
	}
	enr, err := s.access.BeginTOTP(r.Context(), p)
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusOK, api.TOTPEnrollment{Secret: enr.Secret, URL: enr.URL})
	return nil
}

func (s *Server) confirmTOTP(w http.ResponseWriter, r *http.Request) error {
	code, err := s.readCode(w, r)
	if err != nil {
		return err
	}
	codes, cookie, err := s.access.ConfirmTOTP(r.Context(), principal(r), code)
	if err != nil {
		return accessError(err)
	}
	s.rotated(w, cookie)
	writeJSON(w, http.StatusOK, api.RecoveryCodes{Codes: codes})
	return nil
}

func (s *Server) newRecoveryCodes(w http.ResponseWriter, r *http.Request) error {
	codes, err := s.access.NewRecoveryCodes(r.Context(), principal(r))
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusOK, api.RecoveryCodes{Codes: codes})
	return nil
}

func (s *Server) myTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.access.Tokens(r.Context(), principal(r).User.ID)
	if err != nil {
		return err
	}
	return writeTokens(w, ts)
}

func (s *Server) allTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.access.Tokens(r.Context(), r.URL.Query().Get("user"))
	if err != nil {
		return err
	}
	return writeTokens(w, ts)
}

func writeTokens(w http.ResponseWriter, ts []access.APIToken) error {
	out := api.APITokenList{Tokens: make([]api.APIToken, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenView(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.CreateTokenRequest, error) {
		var v api.CreateTokenRequest
		return v, api.Decode(rd, &v)
	})
	if err != nil {
		return err
	}
	var role access.Role
	if req.Role != "" {
		if role, err = access.ParseRole(req.Role); err != nil {
			return accessError(err)
		}
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	t, secret, err := s.access.CreateToken(r.Context(), principal(r), access.CreateTokenRequest{Name: req.Name, Role: role, TTL: ttl})
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusCreated, api.CreatedToken{APIToken: tokenView(t), Token: secret})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.access.RevokeToken(r.Context(), principal(r), r.PathValue("id")); err != nil {
		return accessError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := s.access.Users(r.Context())
	if err != nil {
		return err
	}
	out := api.UserList{Users: make([]api.User, 0, len(us))}
	for _, u := range us {
		m, err := s.access.MFA(r.Context(), u.ID)
		if err != nil {
			return err
		}
		out.Users = append(out.Users, userView(u, &m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) showUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.access.User(r.Context(), r.PathValue("id"))
	if err != nil {
		return accessError(err)
	}
	m, err := s.access.MFA(r.Context(), u.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(u, &m))
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.CreateUserRequest, error) {
		var v api.CreateUserRequest
		return v, api.Decode(rd, &v)
	})
	if err != nil {
		return err
	}
	u, err := s.CreateUserAct(r, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, userView(u, &access.MFA{}))
	return nil
}

func (s *Server) setRole(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.RoleRequest, error) {
		var v api.RoleRequest
		return v, api.Decode(rd, &v)
	})
	if err != nil {
		return err
	}
	u, err := s.SetRoleAct(r, r.PathValue("id"), req.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(u, nil))
	return nil
}

func (s *Server) setDisabled(w http.ResponseWriter, r *http.Request, disabled bool) error {
	if err := s.noBody(w, r); err != nil {
		return err
	}
	u, err := s.SetDisabledAct(r, r.PathValue("id"), disabled)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(u, nil))
	return nil
}

func (s *Server) disableUser(w http.ResponseWriter, r *http.Request) error {
	return s.setDisabled(w, r, true)
}
func (s *Server) enableUser(w http.ResponseWriter, r *http.Request) error {
	return s.setDisabled(w, r, false)
}

func (s *Server) resetMFA(w http.ResponseWriter, r *http.Request) error {
	if err := s.noBody(w, r); err != nil {
		return err
	}
	if err := s.ResetMFAAct(r, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listThrottles(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.access.Throttles(r.Context())
	if err != nil {
		return err
	}
	out := api.ThrottleList{Throttles: make([]api.Throttle, 0, len(ts))}
	now := s.now()
	for _, t := range ts {
		v := api.Throttle{Key: t.Key, Failures: t.Failures, LastFailure: t.LastFailure}
		if t.BlockedUntil.After(now) {
			v.BlockedUntil = &t.BlockedUntil
		}
		out.Throttles = append(out.Throttles, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) clearThrottle(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	if err := s.access.ClearThrottle(r.Context(), r.URL.Query().Get("key"), p.Actor(), p.Meta); err != nil {
		return accessError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deviceStart(w http.ResponseWriter, r *http.Request) error {
	if err := s.noBody(w, r); err != nil {
		return err
	}
	dc, uc, exp, err := s.access.StartDevice(r.Context(), access.MetaOf(r))
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusOK, api.DeviceStart{DeviceCode: dc, UserCode: uc, VerificationURL: s.audience + "/device?code=" + uc,
		IntervalSec: int(access.DevicePoll / time.Second), ExpiresAt: exp})
	return nil
}

func (s *Server) deviceToken(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.DeviceTokenRequest, error) {
		var v api.DeviceTokenRequest
		return v, api.Decode(rd, &v)
	})
	if err != nil {
		return err
	}
	tok, t, err := s.access.PollDevice(r.Context(), req.DeviceCode, access.MetaOf(r))
	if errors.Is(err, access.ErrPending) {
		return errorf(http.StatusPreconditionRequired, api.CodeAuthorizationPending, "waiting for the approval in the browser")
	}
	if err != nil {
		return accessError(err)
	}
	writeJSON(w, http.StatusOK, api.CreatedToken{APIToken: tokenView(t), Token: tok})
	return nil
}

func (s *Server) deviceApprove(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.DeviceApproveRequest, error) {
		var v api.DeviceApproveRequest
		return v, api.Decode(rd, &v)
	})
	if err != nil {
		return err
	}
	if err := s.access.ApproveDevice(r.Context(), principal(r), req.UserCode); err != nil {
		return accessError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// OpenAccess returns the account service on st, as the server builds it:
// for the host-side break-glass commands (`platform users`) and tests. It
// reads (or, on a first start, stores) the service's key in st, without a
// caller's context: a short read at start.
func OpenAccess(cfg Config, dd *DataDir, st access.Store, log *slog.Logger, now func() time.Time) (*access.Service, error) {
	ak, err := accessKey(context.Background(), st, dd.Keys)
	if err != nil {
		return nil, err
	}
	return access.New(cfg.Access, st, dd.Keys, ak, log, now)
}
