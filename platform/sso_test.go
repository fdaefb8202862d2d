package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/oidctest"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/platformtest"
)

// ssoFixture is a running platform and a real OpenID provider (zitadel's
// op package, HTTPS with its own test CA) the platform is set up to
// trust, with users.
type ssoFixture struct {
	t          *testing.T
	e          *platformtest.Env
	idp        *oidctest.Provider
	platformCA []byte
}

// The provider's users: alice is an operator, root an admin, mallory in
// no mapped group, eve of another email domain, carol shares a local
// account's login.
var ssoUsers = []oidctest.User{
	{Subject: "sub-alice", PreferredUsername: "Alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice A", Groups: []string{"staff", "collector-ops"}},
	{Subject: "sub-root", PreferredUsername: "root-sso", Email: "root@example.com", EmailVerified: true, Groups: []string{"collector-admins"}},
	{Subject: "sub-mallory", PreferredUsername: "mallory", Email: "mallory@example.com", EmailVerified: true, Groups: []string{"marketing"}},
	{Subject: "sub-eve", PreferredUsername: "eve", Email: "eve@evil.example", EmailVerified: true, Groups: []string{"collector-admins"}},
	{Subject: "sub-carol", PreferredUsername: "carol", Email: "carol@example.com", EmailVerified: true, Groups: []string{"collector-ops"}},
}

func startSSO(t *testing.T) *ssoFixture {
	t.Helper()
	e := platformtest.Start(t)
	ca, err := os.ReadFile(filepath.Join(e.DataDir, platform.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	f := &ssoFixture{t: t, e: e, idp: oidctest.Start(t, oidctest.Config{RedirectURI: e.URL + platform.PathSSOCallback}), platformCA: ca}
	for _, u := range ssoUsers {
		f.idp.AddUser(u)
	}
	if st, code := f.putSettings(f.settings()); st != 200 {
		t.Fatalf("set up single sign-on: %d %s", st, code)
	}
	return f
}

func (f *ssoFixture) settings() platform.SSOSettingsRequest {
	return platform.SSOSettingsRequest{Issuer: f.idp.Issuer, ClientID: f.idp.ClientID, ClientSecret: f.idp.ClientSecret,
		AllowedDomains: []string{"example.com"}, CABundle: string(f.idp.CAPEM),
		GroupRoles: map[string]string{"collector-admins": "admin", "collector-ops": "operator", "collector-viewers": "viewer"}}
}

func (f *ssoFixture) putSettings(req platform.SSOSettingsRequest) (int, string) {
	admin := newBrowser(f.t, f.e)
	admin.hdr["Authorization"] = "Bearer " + f.e.AdminToken
	return admin.do("PUT", platform.PathSSOSettings, req, nil)
}

// ssoBrowser is a browser: a cookie jar, trusting the platform's and the
// provider's CAs, following redirects; it notes the callback URL the
// provider sends it to and, if stop is set, stops there.
type ssoBrowser struct {
	t        *testing.T
	f        *ssoFixture
	hc       *http.Client
	stop     bool
	callback string
}

func (f *ssoFixture) browser() *ssoBrowser {
	jar, _ := cookiejar.New(nil)
	b := &ssoBrowser{t: f.t, f: f, hc: f.idp.Client(f.platformCA)}
	b.hc.Jar = jar
	b.hc.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), f.e.URL+platform.PathSSOCallback) {
			b.callback = r.URL.String()
			if b.stop {
				return http.ErrUseLastResponse
			}
		}
		return nil
	}
	return b
}

// get opens a URL (or a path of the platform) and returns the last
// answer's status, path and body.
func (b *ssoBrowser) get(u string) (int, string, string) {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.f.e.URL + u
	}
	resp, err := b.hc.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL.Path, string(raw)
}

var continueLink = regexp.MustCompile(`id="continue" href="([^"]+)"`)

// signIn signs in at the provider as subject, through the platform's
// single sign-on, and follows the page the callback answers with. It
// returns the last status, path and body.
func (b *ssoBrowser) signIn(subject string) (int, string, string) {
	b.t.Helper()
	b.f.idp.LoginAs(subject)
	st, path, body := b.get(platform.PathSSOLogin + "?next=/account")
	if st != 200 || path != platform.PathSSOCallback {
		return st, path, body
	}
	m := continueLink.FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, `http-equiv="refresh"`) {
		b.t.Fatalf("the callback page has no continue link and refresh:\n%s", body)
	}
	return b.get(html.UnescapeString(m[1]))
}

func (b *ssoBrowser) cookie(name string) string {
	u, _ := url.Parse(b.f.e.URL)
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *ssoBrowser) setCookie(name, value string) {
	u, _ := url.Parse(b.f.e.URL)
	b.hc.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true}})
}

// me returns the signed-in user and its session's stage (status 401: none).
func (b *ssoBrowser) me() (int, api.Me) {
	b.t.Helper()
	st, _, body := b.get(api.PathMe)
	var m api.Me
	if st == 200 {
		json.Unmarshal([]byte(body), &m)
	}
	return st, m
}

func (f *ssoFixture) user(login string) (api.User, bool) {
	us, err := f.e.Admin.Users(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, u := range us {
		if u.Login == login {
			return u, true
		}
	}
	return api.User{}, false
}

// audit returns the audit entries with that action.
func (f *ssoFixture) audit(action string) []api.AuditEntry {
	l, err := f.e.Admin.Audit(context.Background(), 0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []api.AuditEntry
	for _, en := range l.Entries {
		if en.Action == action {
			out = append(out, en)
		}
	}
	return out
}

// TestSSOSignIn: the whole flow in a browser (sign-in page → provider →
// callback → signed in), the user created with the role its groups map
// to, a second sign-in after a group change updating the role and ending
// the older session, an admin sent to enroll a platform second factor,
// and no secret in the log or the database.
func TestSSOSignIn(t *testing.T) {
	f := startSSO(t)
	b := f.browser()
	if _, _, body := b.get("/login"); !strings.Contains(body, `href="/auth/oidc/login"`) {
		t.Fatalf("the sign-in page offers no single sign-on:\n%s", body)
	}

	// The start: a Lax, HttpOnly, Secure __Host- flow cookie and a
	// redirect to the provider with PKCE S256, a nonce and a state.
	noFollow := *b.hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(f.e.URL + platform.PathSSOLogin)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 303 || !strings.HasPrefix(loc.String(), f.idp.Issuer) || loc.Query().Get("code_challenge_method") != "S256" ||
		loc.Query().Get("nonce") == "" || loc.Query().Get("state") == "" || loc.Query().Get("redirect_uri") != f.e.URL+platform.PathSSOCallback {
		t.Errorf("start: %d to %s", resp.StatusCode, loc)
	}
	setCookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{access.SSOFlowCookieName + "=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=600"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("flow cookie %q lacks %s", setCookie, want)
		}
	}

	st, path, body := b.signIn("sub-alice")
	if st != 200 || path != "/account" || !strings.Contains(body, "Alice A") {
		t.Fatalf("after single sign-on: %d at %s\n%s", st, path, body)
	}
	if m, nonce, state := f.idp.LastAuthRequest(); m != "S256" || !nonce || !state {
		t.Errorf("the provider saw PKCE %q, nonce %v, state %v", m, nonce, state)
	}
	if b.cookie(access.SSOFlowCookieName) != "" {
		t.Error("the flow cookie outlived the callback")
	}
	st, me := b.me()
	if st != 200 || me.User.Login != "alice" || me.Role != "operator" || !me.User.SSO || me.Stage != access.StageFull {
		t.Fatalf("me: %d %+v", st, me)
	}
	if u, ok := f.user("alice"); !ok || u.Role != "operator" || !u.SSO {
		t.Errorf("user alice = %+v (%v), want an operator created by single sign-on", u, ok)
	}
	created := f.audit("user.created")
	if n := len(created); n != 2 || created[n-1].Actor != "sso:"+f.idp.Issuer || !strings.Contains(string(created[n-1].Details), `"sso_subject":"sub-alice"`) {
		t.Errorf("user.created audit: %+v", created)
	}
	signedIn := f.audit("user.signed_in")
	if n := len(signedIn); n == 0 || !strings.Contains(string(signedIn[n-1].Details), `"method":"sso"`) || !strings.Contains(string(signedIn[n-1].Details), `"sso_subject":"sub-alice"`) {
		t.Errorf("user.signed_in audit: %+v", signedIn)
	}

	// The groups change at the provider: the next sign-in lowers the role
	// and, as SetRole does, ends the sessions of the old one.
	alice := ssoUsers[0]
	alice.Groups = []string{"collector-viewers", "staff"}
	f.idp.AddUser(alice)
	b2 := f.browser()
	if st, path, _ := b2.signIn("sub-alice"); st != 200 || path != "/account" {
		t.Fatalf("second sign-in: %d at %s", st, path)
	}
	if st, me := b2.me(); st != 200 || me.Role != "viewer" {
		t.Errorf("after the group change: %d role %q, want viewer", st, me.Role)
	}
	if st, _ := b.me(); st != 401 {
		t.Errorf("the session of the old role: %d, want 401", st)
	}
	changed := f.audit("user.role_changed")
	if len(changed) != 1 || !strings.Contains(string(changed[0].Details), `"from":"operator"`) || !strings.Contains(string(changed[0].Details), `"to":"viewer"`) {
		t.Errorf("user.role_changed audit: %+v", changed)
	}
	if u, _ := f.user("alice"); u.Role != "viewer" {
		t.Errorf("alice's role = %s", u.Role)
	}

	// An admin by its groups: the platform's second factor still applies.
	b3 := f.browser()
	if st, path, _ := b3.signIn("sub-root"); st != 200 || path != "/mfa/enroll" {
		t.Errorf("an admin's single sign-on: %d at %s, want the enrolment", st, path)
	}
	if st, me := b3.me(); st != 200 || me.Stage != access.StageEnroll || me.Role != "admin" {
		t.Errorf("admin session: %d %+v", st, me)
	}

	// No secret in the log or in the database files.
	code, _ := url.Parse(b3.callback)
	var db []byte
	for _, suffix := range []string{"", "-wal"} {
		raw, _ := os.ReadFile(f.e.DBPath + suffix)
		db = append(db, raw...)
	}
	for what, secret := range map[string]string{"client secret": f.idp.ClientSecret, "code": code.Query().Get("code"), "state": code.Query().Get("state")} {
		if secret == "" || strings.Contains(f.e.Logs.String(), secret) {
			t.Errorf("the %s (%q) is in the log", what, secret)
		}
		if strings.Contains(string(db), secret) {
			t.Errorf("the %s is in the database in clear", what)
		}
	}
}

// refusedPage checks a refusal page: its status and reason, no session.
func refusedPage(t *testing.T, b *ssoBrowser, st int, body string, wantStatus int, reason string) {
	t.Helper()
	if st != wantStatus || !strings.Contains(html.UnescapeString(body), reason) {
		t.Errorf("got %d, want %d saying %q:\n%s", st, wantStatus, reason, body)
	}
	if b.cookie(access.SessionCookieName) != "" {
		t.Error("a refused single sign-on set a session cookie")
	}
}

// TestSSOAttacks: each way a callback or an ID token can be wrong is
// refused (and audited) without a session: the state, the nonce, the
// issuer, the audience, the expiry, the signature; the platform's rules
// (no mapped group, another email domain, a local account's login, a
// disabled account); a replayed callback; a callback taken to another
// browser.
func TestSSOAttacks(t *testing.T) {
	f := startSSO(t)
	refusals := len(f.audit("user.sign_in_failed"))
	token := func(name string, tamper func(map[string]any), reason string) {
		t.Run(name, func(t *testing.T) {
			f.idp.Tamper(tamper)
			defer f.idp.Tamper(nil)
			b := f.browser()
			st, _, body := b.signIn("sub-alice")
			refusedPage(t, b, st, body, 401, reason)
		})
	}
	token("missing nonce", func(c map[string]any) { delete(c, "nonce") }, "carries no nonce")
	token("wrong nonce", func(c map[string]any) { c["nonce"] = "another-flows-nonce" }, "nonce is not this sign-in")
	token("wrong issuer", func(c map[string]any) { c["iss"] = "https://evil.example" }, "issued by a different provider")
	token("wrong audience", func(c map[string]any) { c["aud"] = "another-client" }, "expected audience")
	token("several audiences without azp", func(c map[string]any) { c["aud"] = []any{f.idp.ClientID, "another-client"}; delete(c, "azp") },
		"several audiences")
	token("issued in the future", func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }, "issued in the future")
	t.Run("expired", func(t *testing.T) {
		f.idp.AdvanceClock(-time.Hour)
		defer f.idp.AdvanceClock(time.Hour)
		b := f.browser()
		st, _, body := b.signIn("sub-alice")
		refusedPage(t, b, st, body, 401, "the ID token expired")
	})
	t.Run("unpublished key", func(t *testing.T) {
		if err := f.idp.SignWithUnpublishedKey(true); err != nil {
			t.Fatal(err)
		}
		defer f.idp.SignWithUnpublishedKey(false)
		b := f.browser()
		st, _, body := b.signIn("sub-alice")
		refusedPage(t, b, st, body, 401, "failed verification")
	})
	if _, ok := f.user("alice"); ok {
		t.Fatal("a refused sign-in created the user")
	}

	policy := func(name, subject, reason string) {
		t.Run(name, func(t *testing.T) {
			b := f.browser()
			st, _, body := b.signIn(subject)
			refusedPage(t, b, st, body, 403, reason)
		})
	}
	policy("groups map to no role", "sub-mallory", "none of your groups")
	policy("email domain not allowed", "sub-eve", "the email domain evil.example is not allowed")
	if _, ok := f.user("mallory"); ok {
		t.Error("a user in no mapped group was created (a viewer by default?)")
	}
	createUser(t, f.e, "carol", access.RoleViewer)
	policy("login of a local account", "sub-carol", `the login "carol" belongs to an account here that is not linked`)
	if u, _ := f.user("carol"); u.SSO || u.Role != "viewer" {
		t.Errorf("the local account was taken over: %+v", u)
	}

	t.Run("wrong state", func(t *testing.T) {
		b := f.browser()
		b.stop = true
		f.idp.LoginAs("sub-alice")
		b.get(platform.PathSSOLogin)
		u, _ := url.Parse(b.callback)
		q := u.Query()
		q.Set("state", "forged"+q.Get("state"))
		u.RawQuery = q.Encode()
		st, _, body := b.get(u.String())
		refusedPage(t, b, st, body, 401, "the state does not match")
		// The flow is tried once: its cookie is gone with the failure.
		st, _, body = b.get(b.callback)
		refusedPage(t, b, st, body, 401, "no sign-in was started in this browser")
	})

	t.Run("replayed callback", func(t *testing.T) {
		okBefore, refusedBefore := f.idp.Exchanges()
		b := f.browser()
		b.stop = true
		f.idp.LoginAs("sub-alice")
		b.get(platform.PathSSOLogin)
		flow, callback := b.cookie(access.SSOFlowCookieName), b.callback
		if st, _, body := b.get(callback); st != 200 || b.cookie(access.SessionCookieName) == "" {
			t.Fatalf("the first use of the callback: %d\n%s", st, body)
		}
		// Again in the same browser: the flow cookie is gone.
		session := b.cookie(access.SessionCookieName)
		b.setCookie(access.SessionCookieName, "")
		st, _, body := b.get(callback)
		refusedPage(t, b, st, body, 401, "no sign-in was started in this browser")
		// With the flow cookie put back: the flow was used.
		b.setCookie(access.SSOFlowCookieName, flow)
		st, _, body = b.get(callback)
		refusedPage(t, b, st, body, 401, "this sign-in was already completed")
		ok, refused := f.idp.Exchanges()
		if ok != okBefore+1 || refused != refusedBefore {
			t.Errorf("the provider saw %d more exchanges and %d more refusals: the platform presented a code twice", ok-okBefore, refused-refusedBefore)
		}
		// The provider would refuse the code too, even with the client's
		// secret and the right redirect.
		code, _ := url.Parse(callback)
		oc := oauth2.Config{ClientID: f.idp.ClientID, ClientSecret: f.idp.ClientSecret, RedirectURL: f.e.URL + platform.PathSSOCallback,
			Endpoint: oauth2.Endpoint{TokenURL: f.idp.Issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
		if _, err := oc.Exchange(context.WithValue(context.Background(), oauth2.HTTPClient, f.idp.Client()), code.Query().Get("code")); err == nil {
			t.Error("the provider exchanged a used code")
		}
		if session == "" {
			t.Error("no session from the first use")
		}
	})

	t.Run("callback in another browser", func(t *testing.T) {
		a := f.browser()
		a.stop = true
		f.idp.LoginAs("sub-alice")
		a.get(platform.PathSSOLogin)
		okBefore, _ := f.idp.Exchanges()
		// A browser that started nothing, and one that started its own
		// sign-in: neither finishes a's.
		other := f.browser()
		st, _, body := other.get(a.callback)
		refusedPage(t, other, st, body, 401, "no sign-in was started in this browser")
		own := f.browser()
		own.stop = true
		own.get(platform.PathSSOLogin)
		st, _, body = own.get(a.callback)
		refusedPage(t, own, st, body, 401, "the state does not match")
		if ok, _ := f.idp.Exchanges(); ok != okBefore {
			t.Errorf("a callback in another browser reached the provider (%d exchanges)", ok-okBefore)
		}
		// a's own flow is intact.
		if st, _, _ := a.get(a.callback); st != 200 || a.cookie(access.SessionCookieName) == "" {
			t.Errorf("the browser that started the sign-in: %d, no session", st)
		}
	})

	t.Run("disabled account", func(t *testing.T) {
		u, ok := f.user("alice")
		if !ok {
			t.Fatal("alice was not created by the sign-ins above")
		}
		admin := newBrowser(t, f.e)
		admin.hdr["Authorization"] = "Bearer " + f.e.AdminToken
		if st, code := admin.do("POST", api.PathUsers+"/"+u.ID+"/disable", nil, nil); st != 200 {
			t.Fatalf("disable: %d %s", st, code)
		}
		b := f.browser()
		st, _, body := b.signIn("sub-alice")
		refusedPage(t, b, st, body, 403, "your account here is disabled")
	})

	t.Run("provider error", func(t *testing.T) {
		b := f.browser()
		b.stop = true
		f.idp.LoginAs("sub-alice")
		b.get(platform.PathSSOLogin)
		u, _ := url.Parse(b.callback)
		q := url.Values{"error": {"access_denied"}, "error_description": {"The user said no"}, "state": {u.Query().Get("state")}}
		st, _, body := b.get(f.e.URL + platform.PathSSOCallback + "?" + q.Encode())
		refusedPage(t, b, st, body, 401, "the provider refused the sign-in: access_denied (The user said no)")
	})

	// Last: the platform's clock moves past the flow's lifetime.
	t.Run("flow too old", func(t *testing.T) {
		b := f.browser()
		b.stop = true
		f.idp.LoginAs("sub-alice")
		b.get(platform.PathSSOLogin)
		f.e.Clock.Advance(access.SSOFlowLifetime + time.Second)
		st, _, body := b.get(b.callback)
		refusedPage(t, b, st, body, 401, "took longer than")
	})

	failed := f.audit("user.sign_in_failed")[refusals:]
	if len(failed) < 18 {
		t.Errorf("%d refusals audited, want one per refusal above", len(failed))
	}
	for _, en := range failed {
		if !strings.Contains(string(en.Details), `"method":"sso"`) || !strings.Contains(string(en.Details), `"reason":`) {
			t.Errorf("refusal audited without method and reason: %s", en.Details)
		}
	}
	if !strings.Contains(string(failed[0].Details), `"sso_subject":"sub-alice"`) && !strings.Contains(string(failed[len(failed)-1].Details), `"sso_subject"`) {
		t.Errorf("refusals audited without the subject: %s", failed[0].Details)
	}
}

// TestSSOLink: an admin links a local account to a provider identity
// (never the sign-in by itself): the next single sign-on opens it, its
// role following the groups.
func TestSSOLink(t *testing.T) {
	f := startSSO(t)
	createUser(t, f.e, "carol", access.RoleViewer)
	b := f.browser()
	if st, _, _ := b.signIn("sub-carol"); st != 403 {
		t.Fatalf("before the link: %d, want 403", st)
	}
	dd, st := platformtest.OpenStore(t, f.e.Config)
	defer st.Close()
	svc, err := platform.OpenAccess(f.e.Config, dd, st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	sso, err := platform.OpenSSO(f.e.Config, svc)
	if err != nil {
		t.Fatal(err)
	}
	carol, _ := f.user("carol")
	if _, err := sso.Link(context.Background(), carol.ID, "sub-carol", "break-glass:test", access.Meta{Source: "host"}); err != nil {
		t.Fatal(err)
	}
	admin, _ := f.user(platformtest.AdminLogin)
	if _, err := sso.Link(context.Background(), admin.ID, "sub-carol", "break-glass:test", access.Meta{Source: "host"}); !errors.Is(err, access.ErrConflict) {
		t.Errorf("a subject linked to a second account: %v, want a conflict", err)
	}
	if st, path, _ := b.signIn("sub-carol"); st != 200 || path != "/account" {
		t.Fatalf("after the link: %d at %s", st, path)
	}
	if st, me := b.me(); st != 200 || me.User.ID != carol.ID || me.Role != "operator" {
		t.Errorf("after the link: %d %+v, want carol as an operator", st, me)
	}
	if len(f.audit("user.sso_linked")) != 1 {
		t.Error("the link is not audited")
	}
}

// TestSSOSettingsAPI: admins read the settings (never the secret), set
// them (the provider checked first; a secret kept for the same client)
// and switch single sign-on off; other roles cannot; setting and
// switching off need a recent second factor in a browser session.
func TestSSOSettingsAPI(t *testing.T) {
	f := startSSO(t)
	admin := newBrowser(t, f.e)
	admin.hdr["Authorization"] = "Bearer " + f.e.AdminToken
	var v platform.SSOSettingsView
	if st, _ := admin.do("GET", platform.PathSSOSettings, nil, &v); st != 200 || !v.Enabled || v.ClientSecret != "set" ||
		v.RedirectURL != f.e.URL+platform.PathSSOCallback || v.GroupRoles["collector-admins"] != "admin" {
		t.Errorf("GET: %d %+v", st, v)
	}
	req := f.settings()
	req.ClientSecret = ""
	req.GroupRoles["staff"] = "viewer"
	if st, code := f.putSettings(req); st != 200 {
		t.Errorf("a change without the secret: %d %s", st, code)
	}
	if st, _, _ := f.browser().signIn("sub-alice"); st != 200 {
		t.Errorf("the kept secret does not sign in: %d", st)
	}
	req.ClientID = "another"
	if st, code := f.putSettings(req); st != 400 || code != api.CodeInvalidRequest {
		t.Errorf("another client without a secret: %d %s", st, code)
	}
	bad := f.settings()
	bad.GroupRoles = nil
	if st, code := f.putSettings(bad); st != 400 {
		t.Errorf("no group mapping: %d %s", st, code)
	}
	unreachable := f.settings()
	unreachable.Issuer = "https://127.0.0.1:1"
	if st, code := f.putSettings(unreachable); st != 502 || code != "sso_provider_error" {
		t.Errorf("an issuer that does not answer: %d %s", st, code)
	}
	untrusted := f.settings()
	untrusted.CABundle = ""
	if st, code := f.putSettings(untrusted); st != 502 {
		t.Errorf("a provider whose CA is not trusted: %d %s", st, code)
	}
	operator := newBrowser(t, f.e)
	operator.hdr["Authorization"] = "Bearer " + tokenOf(t, f.e, "olga", createUser(t, f.e, "olga", access.RoleOperator))
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		if st, _ := operator.do(m, platform.PathSSOSettings, f.settings(), nil); st != 403 {
			t.Errorf("%s as an operator: %d", m, st)
		}
	}
	for _, r := range f.e.Server.Routes() {
		if r.Path == platform.PathSSOSettings && r.Method != "GET" && (!r.StepUp || r.Permission != access.PermAdmin) {
			t.Errorf("%s %s: %+v, want admin with step-up", r.Method, r.Path, r)
		}
	}
	for _, en := range f.audit("sso.settings_changed") {
		if strings.Contains(string(en.Details), f.idp.ClientSecret) {
			t.Error("the client secret is in the audit log")
		}
	}
	if st, _ := admin.do("DELETE", platform.PathSSOSettings, nil, nil); st != 204 {
		t.Fatalf("DELETE: %d", st)
	}
	if len(f.audit("sso.disabled")) != 1 || len(f.audit("sso.settings_changed")) != 2 {
		t.Error("the changes are not all audited")
	}
	b := f.browser()
	if _, _, body := b.get("/login"); strings.Contains(body, platform.PathSSOLogin) {
		t.Error("the sign-in page still offers single sign-on")
	}
	if st, _, _ := b.get(platform.PathSSOLogin); st != 404 {
		t.Errorf("start once off: %d, want 404", st)
	}
	if st, _ := admin.do("DELETE", platform.PathSSOSettings, nil, nil); st != 404 {
		t.Errorf("DELETE twice: %d", st)
	}
	if st, _ := admin.do("GET", platform.PathSSOSettings, nil, &v); st != 200 || v.Enabled {
		t.Errorf("GET once off: %d %+v", st, v)
	}
}
