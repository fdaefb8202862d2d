package platform_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/pquerna/otp/totp"

	"github.com/collectorhq/collector/platform/platformtest"
)

// page submits a form (or GETs with form == nil) and returns the final
// status, URL and body, following redirects like a browser.
func (b *browser) page(method, path string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.e.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL.Path, string(raw)
}

// TestConsoleSetupAndSignIn drives the pages as a browser without
// JavaScript would: the setup link, the enrolment of an authenticator
// app, the recovery codes, then a sign-in with the app's code.
func TestConsoleSetupAndSignIn(t *testing.T) {
	e := platformtest.StartEmpty(t)
	link := e.Server.SetupLink()
	b := newBrowser(t, e)
	u, _ := url.Parse(link)
	st, _, body := b.page("GET", u.RequestURI(), nil)
	if st != 200 || !strings.Contains(body, "Create the first administrator") {
		t.Fatalf("setup page: %d\n%s", st, body)
	}
	st, path, body := b.page("POST", "/setup", url.Values{"token": {u.Query().Get("token")}, "login": {"Root"}, "display_name": {"<b>Root</b>"}, "password": {"first admin passphrase, long enough"}})
	if st != 200 || path != "/mfa/enroll" {
		t.Fatalf("after setup: %d at %s\n%s", st, path, body)
	}
	// A page before the second factor: back to the enrolment.
	if _, path, _ := b.page("GET", "/account", nil); path != "/mfa/enroll" {
		t.Errorf("account before the second factor went to %s", path)
	}
	_, _, body = b.page("POST", "/mfa/enroll/totp", url.Values{})
	secret := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(body)
	if secret == nil {
		t.Fatalf("no TOTP secret on the page:\n%s", body)
	}
	code, _ := totp.GenerateCode(secret[1], e.Clock.Now())
	st, _, body = b.page("POST", "/mfa/enroll/confirm", url.Values{"code": {code}})
	if st != 200 || strings.Count(body, "<li>") != 10 {
		t.Fatalf("recovery codes page: %d\n%s", st, body)
	}
	st, path, body = b.page("GET", "/", nil)
	if st != 200 || path != "/" || !strings.Contains(body, "&lt;b&gt;Root&lt;/b&gt;") || strings.Contains(body, "<b>Root</b>") {
		t.Fatalf("home: %d at %s (the display name must be escaped)\n%s", st, path, body)
	}
	// Sign out, sign in again: password, then the code.
	b.page("POST", "/logout", url.Values{})
	if _, path, _ := b.page("GET", "/account", nil); path != "/login" {
		t.Errorf("after sign-out, /account went to %s", path)
	}
	st, _, body = b.page("POST", "/login", url.Values{"login": {"root"}, "password": {"wrong password entirely"}, "next": {"/account"}})
	if st != 401 || !strings.Contains(body, "Wrong login or password.") {
		t.Errorf("wrong password page: %d\n%s", st, body)
	}
	// An open redirect through next is refused.
	_, path, _ = b.page("POST", "/login", url.Values{"login": {"root"}, "password": {"first admin passphrase, long enough"}, "next": {"https://evil.example/x"}})
	if path != "/login/mfa" {
		t.Fatalf("after password: at %s, want /login/mfa", path)
	}
	e.Clock.Advance(31e9)
	code, _ = totp.GenerateCode(secret[1], e.Clock.Now())
	st, path, _ = b.page("POST", "/login/mfa", url.Values{"code": {code}, "next": {"//evil.example/x"}})
	if st != 200 || path != "/" {
		t.Errorf("after the code: %d at %s, want / (never another site)", st, path)
	}
}

// TestConsoleHeaders: a strict CSP and no framing on every page.
func TestConsoleHeaders(t *testing.T) {
	e := platformtest.Start(t)
	resp, err := e.HTTP.Get(e.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers = %v", resp.Header)
	}
}
