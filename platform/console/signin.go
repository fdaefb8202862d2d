package console

import (
	"html/template"
	"net/http"
	"time"

	"github.com/collectorhq/collector/platform/access"
)

// Handler is a page: pr is the signed-in principal (nil on a public page).
type Handler func(w http.ResponseWriter, r *http.Request, pr *access.Principal)

// Route is a page and what it needs, registered by the platform through
// the same authorization as the API.
type Route struct {
	Pattern    string
	Permission access.Permission
	// Partial: a session waiting for its second factor may open it.
	Partial bool
	// StepUp: a destructive act (needs a recent second factor).
	StepUp  bool
	Handler Handler
}

// Routes lists the console's sign-in and account pages; the platform
// adds its data pages (collectors, integrations, jobs, data, audit, users).
func (c *Console) Routes() []Route {
	pub, signed := access.PermPublic, access.PermSignedIn
	return []Route{
		{Pattern: "GET /login", Permission: pub, Handler: c.loginPage},
		{Pattern: "POST /login", Permission: pub, Handler: c.loginSubmit},
		{Pattern: "GET /setup", Permission: pub, Handler: c.setupPage},
		{Pattern: "POST /setup", Permission: pub, Handler: c.setupSubmit},
		{Pattern: "GET /login/mfa", Permission: signed, Partial: true, Handler: c.mfaPage},
		{Pattern: "POST /login/mfa", Permission: signed, Partial: true, Handler: c.mfaSubmit},
		{Pattern: "POST /login/recovery", Permission: signed, Partial: true, Handler: c.recoverySubmit},
		{Pattern: "GET /mfa/enroll", Permission: signed, Partial: true, Handler: c.enrollPage},
		{Pattern: "POST /mfa/enroll/totp", Permission: signed, Partial: true, Handler: c.enrollTOTP},
		{Pattern: "POST /mfa/enroll/confirm", Permission: signed, Partial: true, Handler: c.enrollConfirm},
		{Pattern: "GET /account/recovery-codes", Permission: signed, Handler: c.codesConfirmPage, StepUp: true},
		{Pattern: "POST /account/recovery-codes", Permission: signed, Handler: c.newCodesPage, StepUp: true},
		{Pattern: "POST /logout", Permission: signed, Partial: true, Handler: c.logout},
		{Pattern: "POST /logout-everywhere", Permission: signed, Handler: c.logoutEverywhere},
		{Pattern: "GET /account", Permission: signed, Handler: c.accountPage},
		{Pattern: "GET /device", Permission: signed, Handler: c.devicePage},
		{Pattern: "POST /device", Permission: signed, Handler: c.deviceSubmit},
	}
}

func (c *Console) signedIn(w http.ResponseWriter, r *http.Request, in *access.SignedIn, next string) {
	c.d.SetCookie(w, access.SessionCookieName, in.Token, c.d.SessionTTL)
	if in.DeviceCookie != "" {
		c.d.SetCookie(w, access.DeviceCookieName, in.DeviceCookie, 365*24*time.Hour)
	}
	http.Redirect(w, r, stagePath(in.Session.Stage, next), http.StatusSeeOther)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request, _ *access.Principal) {
	c.render(w, http.StatusOK, "login", &Page{Title: "Sign in", Narrow: true, Next: safeNext(r.URL.Query().Get("next")), SSO: c.d.SSO != nil && c.d.SSO()})
}

func (c *Console) loginSubmit(w http.ResponseWriter, r *http.Request, _ *access.Principal) {
	login, next := r.PostFormValue("login"), safeNext(r.PostFormValue("next"))
	device := ""
	if ck, err := r.Cookie(access.DeviceCookieName); err == nil {
		device = ck.Value
	}
	in, err := c.d.Access.SignIn(r.Context(), login, r.PostFormValue("password"), device, access.MetaOf(r))
	if err != nil {
		status := http.StatusUnauthorized
		if _, ok := err.(*access.ThrottledError); ok {
			status = http.StatusTooManyRequests
		}
		c.render(w, status, "login", &Page{Title: "Sign in", Narrow: true, Next: next, Login: login, Error: message(err), SSO: c.d.SSO != nil && c.d.SSO()})
		return
	}
	c.signedIn(w, r, in, next)
}

func (c *Console) setupPage(w http.ResponseWriter, r *http.Request, _ *access.Principal) {
	tok := r.URL.Query().Get("token")
	if err := c.d.Access.CheckSetupToken(r.Context(), tok); err != nil {
		c.Error(w, nil, http.StatusUnauthorized, "Setup link not valid", err.Error())
		return
	}
	c.render(w, http.StatusOK, "setup", &Page{Title: "Set up", Narrow: true, Token: tok})
}

func (c *Console) setupSubmit(w http.ResponseWriter, r *http.Request, _ *access.Principal) {
	req := access.CreateUserRequest{Login: r.PostFormValue("login"), DisplayName: r.PostFormValue("display_name"), Password: r.PostFormValue("password")}
	in, err := c.d.Access.CompleteSetup(r.Context(), r.PostFormValue("token"), req, access.MetaOf(r))
	if err != nil {
		c.render(w, http.StatusBadRequest, "setup", &Page{Title: "Set up", Narrow: true, Token: r.PostFormValue("token"),
			Login: req.Login, DisplayName: req.DisplayName, Error: message(err)})
		return
	}
	c.signedIn(w, r, in, "/")
}

func (c *Console) mfaPage(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	m, err := c.d.Access.MFA(r.Context(), pr.User.ID)
	if err != nil {
		c.Error(w, pr, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	if !m.Enrolled() {
		http.Redirect(w, r, "/mfa/enroll", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "mfa", withUser(&Page{Title: "Second factor", Narrow: true, Next: safeNext(r.URL.Query().Get("next")), MFA: m,
		Scripts: []string{"webauthn.js"}}, pr))
}

// afterFactor sets the rotated session and goes on.
func (c *Console) afterFactor(w http.ResponseWriter, r *http.Request, pr *access.Principal, cookie string, err error) {
	if err != nil {
		m, _ := c.d.Access.MFA(r.Context(), pr.User.ID)
		c.render(w, http.StatusUnauthorized, "mfa", withUser(&Page{Title: "Second factor", Narrow: true, Next: safeNext(r.PostFormValue("next")), MFA: m,
			Error: message(err), Scripts: []string{"webauthn.js"}}, pr))
		return
	}
	if cookie != "" {
		c.d.SetCookie(w, access.SessionCookieName, cookie, c.d.SessionTTL)
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) mfaSubmit(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	cookie, err := c.d.Access.VerifyTOTP(r.Context(), pr, r.PostFormValue("code"))
	c.afterFactor(w, r, pr, cookie, err)
}

func (c *Console) recoverySubmit(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	cookie, err := c.d.Access.VerifyRecoveryCode(r.Context(), pr, r.PostFormValue("code"))
	c.afterFactor(w, r, pr, cookie, err)
}

func (c *Console) enrollPage(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	if pr.Session != nil && pr.Session.Stage == access.StageMFA {
		http.Redirect(w, r, "/login/mfa", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "enroll", withUser(&Page{Title: "Second factor", Narrow: true, Scripts: []string{"webauthn.js"}}, pr))
}

func (c *Console) enrollTOTP(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	enr, err := c.d.Access.BeginTOTP(r.Context(), pr)
	if err != nil {
		c.render(w, http.StatusBadRequest, "enroll", withUser(&Page{Title: "Second factor", Narrow: true, Error: message(err)}, pr))
		return
	}
	c.render(w, http.StatusOK, "enroll", withUser(&Page{Title: "Second factor", Narrow: true, TOTP: enr, TOTPURL: template.URL(enr.URL)}, pr))
}

func (c *Console) enrollConfirm(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	codes, cookie, err := c.d.Access.ConfirmTOTP(r.Context(), pr, r.PostFormValue("code"))
	if err != nil {
		c.render(w, http.StatusBadRequest, "enroll", withUser(&Page{Title: "Second factor", Narrow: true, Error: message(err)}, pr))
		return
	}
	if cookie != "" {
		c.d.SetCookie(w, access.SessionCookieName, cookie, c.d.SessionTTL)
	}
	c.render(w, http.StatusOK, "codes", withUser(&Page{Title: "Recovery codes", Narrow: true, Codes: codes}, pr))
}

// codesConfirmPage asks before new recovery codes replace the old ones
// (a GET changes nothing).
func (c *Console) codesConfirmPage(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	c.render(w, http.StatusOK, "codes", withUser(&Page{Title: "New recovery codes", Narrow: true}, pr))
}

func (c *Console) newCodesPage(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	codes, err := c.d.Access.NewRecoveryCodes(r.Context(), pr)
	if err != nil {
		c.Error(w, pr, http.StatusBadRequest, "Recovery codes", message(err))
		return
	}
	c.render(w, http.StatusOK, "codes", withUser(&Page{Title: "Recovery codes", Narrow: true, Codes: codes}, pr))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	if pr.Session != nil {
		c.d.Access.SignOut(r.Context(), pr, pr.Meta)
	}
	c.d.ClearCookie(w, access.SessionCookieName)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (c *Console) logoutEverywhere(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	if _, err := c.d.Access.SignOutEverywhere(r.Context(), pr, pr.Meta); err != nil {
		c.Error(w, pr, http.StatusInternalServerError, "Error", message(err))
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

func (c *Console) accountPage(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	m, err := c.d.Access.MFA(r.Context(), pr.User.ID)
	if err != nil {
		c.Error(w, pr, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	c.render(w, http.StatusOK, "account", withUser(&Page{Title: "Account", MFA: m}, pr))
}

func (c *Console) devicePage(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	c.render(w, http.StatusOK, "device", withUser(&Page{Title: "Sign in the command line", Narrow: true, Code: r.URL.Query().Get("code")}, pr))
}

func (c *Console) deviceSubmit(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	if err := c.d.Access.ApproveDevice(r.Context(), pr, r.PostFormValue("code")); err != nil {
		c.render(w, http.StatusBadRequest, "device", withUser(&Page{Title: "Sign in the command line", Narrow: true, Code: r.PostFormValue("code"), Error: message(err)}, pr))
		return
	}
	c.render(w, http.StatusOK, "device", withUser(&Page{Title: "Sign in the command line", Narrow: true, Done: true}, pr))
}
