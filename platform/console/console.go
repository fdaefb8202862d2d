// Package console is the platform's web console: server-rendered pages
// (html/template, which escapes everything a collector, an integration or
// a user sent) over the same services and the same permission checks as
// the API. Its assets are embedded; the Content-Security-Policy forbids
// inline script and style, so pages work without JavaScript and scripts
// only enhance them (passkeys need one).
package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/collectorhq/collector/platform/access"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Deps are what the console's pages use: the platform's services.
type Deps struct {
	Access *access.Service
	// SetCookie and ClearCookie write the platform's __Host- cookies.
	SetCookie   func(w http.ResponseWriter, name, value string, maxAge time.Duration)
	ClearCookie func(w http.ResponseWriter, name string)
	SessionTTL  time.Duration
	// SSO reports whether single sign-on is configured (the sign-in page
	// offers it).
	SSO func() bool
	Log *slog.Logger
}

// Console renders and serves the pages.
type Console struct {
	d     Deps
	pages map[string]*template.Template
}

// New parses the templates.
func New(d Deps) (*Console, error) {
	c := &Console{d: d, pages: map[string]*template.Template{}}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		c.pages[name] = t
	}
	return c, nil
}

// Static serves the embedded assets.
func (c *Console) Static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
}

// Page is what every template gets.
type Page struct {
	Title   string
	Narrow  bool
	User    *access.User
	Role    access.Role
	Error   string
	Scripts []string
	// Page-specific fields.
	Next, Login, DisplayName, Token, Code, Message string
	TOTP                                           *access.TOTPEnrollment
	TOTPURL                                        template.URL
	Codes                                          []string
	MFA                                            access.MFA
	Done, SSO                                      bool
	// Data is a data page's content; URL the page's own address (links
	// that keep its filters).
	Data any
	URL  *url.URL
}

// render writes a page; a template error is logged and answered 500.
func (c *Console) render(w http.ResponseWriter, status int, name string, p *Page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.d.Log.Error("rendering a page failed", "page", name, "err", err)
		http.Error(w, "internal error; see the platform log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

// withUser fills the signed-in parts of a page.
func withUser(p *Page, pr *access.Principal) *Page {
	if pr != nil {
		u := pr.User
		p.User, p.Role = &u, pr.Role
	}
	return p
}

// Error renders an error page.
func (c *Console) Error(w http.ResponseWriter, pr *access.Principal, status int, title, msg string) {
	c.render(w, status, "error", withUser(&Page{Title: title, Message: msg}, pr))
}

// safeNext returns next if it is a local path, else "/": a sign-in never
// sends the browser to another site.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if next == "" || err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, `\`) {
		return "/"
	}
	return next
}

// stagePath is where a session at stage goes next.
func stagePath(stage, next string) string {
	switch stage {
	case access.StageMFA:
		return "/login/mfa?next=" + url.QueryEscape(next)
	case access.StageEnroll:
		return "/mfa/enroll"
	}
	return safeNext(next)
}

// RedirectToSignIn sends an unauthenticated browser to the sign-in page
// (or a partly signed-in one to its second factor), then back.
func RedirectToSignIn(w http.ResponseWriter, r *http.Request, pr *access.Principal) {
	next := r.URL.RequestURI()
	if pr != nil && pr.Session != nil && pr.Session.Stage != access.StageFull {
		http.Redirect(w, r, stagePath(pr.Session.Stage, next), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// StepUp sends the browser to confirm its second factor, then back.
func StepUp(w http.ResponseWriter, r *http.Request) {
	next := r.Referer()
	if next == "" || r.Method == http.MethodGet {
		next = r.URL.RequestURI()
	}
	http.Redirect(w, r, "/login/mfa?next="+url.QueryEscape(safeNext(pathOf(next))), http.StatusSeeOther)
}

func pathOf(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "/"
	}
	return u.RequestURI()
}

// message turns a service error into a sentence for the page.
func message(err error) string {
	var te *access.ThrottledError
	switch {
	case errors.As(err, &te):
		return te.Error()
	case errors.Is(err, access.ErrBadCredentials):
		return "Wrong login or password."
	}
	return err.Error()
}
