package platform_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/platformtest"
)

// browser is an HTTP client with a cookie jar, as a browser would be.
type browser struct {
	t   *testing.T
	e   *platformtest.Env
	hc  *http.Client
	hdr map[string]string
}

func newBrowser(t *testing.T, e *platformtest.Env) *browser {
	jar, _ := cookiejar.New(nil)
	hc := *e.HTTP
	hc.Jar = jar
	return &browser{t: t, e: e, hc: &hc, hdr: map[string]string{}}
}

// do sends a JSON request and returns the status and the decoded body.
func (b *browser) do(method, path string, in, out any) (int, string) {
	b.t.Helper()
	var body io.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, b.e.URL+path, body)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range b.hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	if resp.StatusCode >= 400 {
		json.Unmarshal(raw, &eb)
	} else if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, eb.Error.Code
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.URL)
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// user creates a user through the API and returns its password.
func createUser(t *testing.T, e *platformtest.Env, login string, role access.Role) string {
	t.Helper()
	pw := "a long passphrase, kept apart from the login " + strings.Repeat("z", len(login)%5)
	admin := newBrowser(t, e)
	admin.hdr["Authorization"] = "Bearer " + e.AdminToken
	if st, code := admin.do("POST", api.PathUsers, api.CreateUserRequest{Login: login, DisplayName: login, Password: pw, Role: string(role)}, nil); st != 201 {
		t.Fatalf("create user %s: %d %s", login, st, code)
	}
	return pw
}

// tokenOf signs login in and creates an API token of role.
func tokenOf(t *testing.T, e *platformtest.Env, login, pw string) string {
	t.Helper()
	b := newBrowser(t, e)
	if st, code := b.do("POST", api.PathLogin, api.LoginRequest{Login: login, Password: pw}, nil); st != 200 {
		t.Fatalf("sign in %s: %d %s", login, st, code)
	}
	var tok api.CreatedToken
	if st, code := b.do("POST", api.PathMyTokens, api.CreateTokenRequest{Name: "t"}, &tok); st != 201 {
		t.Fatalf("token of %s: %d %s", login, st, code)
	}
	return tok.Token
}

// TestRouteRoleTable walks every route × every role and checks the answer
// against the route's declared permission (P8 item 1). A route without a
// declared permission cannot be registered (routes panics); this test
// makes sure the declarations are what the roles allow.
func TestRouteRoleTable(t *testing.T) {
	e := platformtest.Start(t)
	tokens := map[access.Role]string{access.RoleAdmin: e.AdminToken}
	for _, r := range []access.Role{access.RoleViewer, access.RoleOperator} {
		tokens[r] = tokenOf(t, e, string(r)+"-user", createUser(t, e, string(r)+"-user", r))
	}
	c := e.EnrollNew(t, "c")
	collectorTok, err := c.Client.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	routes := e.Server.Routes()
	if len(routes) < 50 {
		t.Fatalf("only %d routes", len(routes))
	}
	noFollow := *e.HTTP
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	send := func(bearer, method, path string) (int, string, string) {
		req, _ := http.NewRequest(method, e.URL+path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var eb api.ErrorBody
		json.Unmarshal(raw, &eb)
		return resp.StatusCode, eb.Error.Code, resp.Header.Get("Location")
	}
	for _, ri := range routes {
		if ri.Permission == "" {
			t.Errorf("%s %s declares no permission", ri.Method, ri.Path)
		}
		path := strings.NewReplacer("{id}", "nosuchid", "{$}", "").Replace(ri.Path)
		if ri.Page {
			// A page answers a browser: a redirect to sign in, an HTML 403.
			for _, role := range []access.Role{"", access.RoleViewer, access.RoleOperator, access.RoleAdmin} {
				st, _, loc := send(tokens[role], ri.Method, path)
				switch {
				case ri.Permission == access.PermPublic:
				case role == "":
					if st != 303 || !strings.HasPrefix(loc, "/login") {
						t.Errorf("page %s %s unauthenticated: %d → %q, want a redirect to sign in", ri.Method, ri.Path, st, loc)
					}
				case !access.Allows(role, ri.Permission):
					if st != 403 {
						t.Errorf("page %s %s as %q: %d, want 403", ri.Method, ri.Path, role, st)
					}
				case st == 403 || (st == 303 && strings.HasPrefix(loc, "/login?")):
					t.Errorf("page %s %s as %q: %d → %q, want it allowed", ri.Method, ri.Path, role, st, loc)
				}
			}
			if st, _, loc := send(collectorTok, ri.Method, path); ri.Permission != access.PermPublic && (st != 303 || !strings.HasPrefix(loc, "/login")) {
				t.Errorf("page %s %s with a collector token: %d → %q, want a redirect to sign in", ri.Method, ri.Path, st, loc)
			}
			continue
		}
		for _, role := range []access.Role{"", access.RoleViewer, access.RoleOperator, access.RoleAdmin} {
			bearer := tokens[role]
			st, code, _ := send(bearer, ri.Method, path)
			switch ri.Permission {
			case access.PermPublic:
				if st == 403 {
					t.Errorf("public %s %s as %q: 403", ri.Method, ri.Path, role)
				}
			case access.PermCollector:
				if st != 401 {
					t.Errorf("collector route %s %s with a user token (%q): %d, want 401", ri.Method, ri.Path, role, st)
				}
			default:
				want := "allowed"
				switch {
				case role == "":
					want = "401"
				case !access.Allows(role, ri.Permission):
					want = "403"
				}
				got := "allowed"
				if st == 401 && code != api.CodeBadCredentials && code != api.CodeSecondFactor {
					got = "401"
				} else if st == 403 && code == api.CodeForbidden {
					got = "403"
				}
				if got != want {
					t.Errorf("%s %s (needs %s) as %q: %d %s, want %s", ri.Method, ri.Path, ri.Permission, role, st, code, want)
				}
			}
		}
		if ri.Permission == access.PermCollector {
			if st, _, _ := send(collectorTok, ri.Method, strings.NewReplacer("{id}", "job_x").Replace(ri.Path)); st == 401 {
				t.Errorf("collector route %s %s refused the collector's own token", ri.Method, ri.Path)
			}
		} else if ri.Permission != access.PermPublic {
			if st, _, _ := send(collectorTok, ri.Method, path); st != 401 {
				t.Errorf("user route %s %s accepted a collector token: %d", ri.Method, ri.Path, st)
			}
		}
	}
}

// TestViewerSeesNoSecrets: a viewer reads integrations (masked), never an
// enrollment token, and cannot create one.
func TestViewerSeesNoSecrets(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	newJobIntegration(t, e, "ldap", a.ID)
	viewer := api.NewAdminClient(e.URL, tokenOf(t, e, "vera", createUser(t, e, "vera", access.RoleViewer)), e.HTTP)
	list, err := viewer.Integrations(ctx)
	if err != nil || len(list) != 1 || strings.Contains(string(list[0].Config), secretValue) {
		t.Errorf("viewer's integrations = %+v, %v", list, err)
	}
	_, err = viewer.NewEnrollmentToken(ctx, a.ID)
	wantAPIError(t, err, 403, api.CodeForbidden)
	_, err = viewer.CreateCollector(ctx, api.CreateCollectorRequest{Name: "x"})
	wantAPIError(t, err, 403, api.CodeForbidden)
}

// TestSignInAttacks: the refusals a browser sees.
func TestSignInAttacks(t *testing.T) {
	e := platformtest.Start(t)
	pw := createUser(t, e, "alice", access.RoleOperator)
	b := newBrowser(t, e)
	for _, tc := range []struct{ login, pw string }{{"alice", "wrong password here"}, {"nobody", pw}, {strings.Repeat("ü", 500), pw}} {
		st, code := b.do("POST", api.PathLogin, api.LoginRequest{Login: tc.login, Password: tc.pw}, nil)
		if st != 401 || code != api.CodeBadCredentials {
			t.Errorf("sign in %.20q: %d %s, want 401 bad_credentials", tc.login, st, code)
		}
	}
	// Session fixation: a cookie the attacker planted is never the session.
	planted := "csess_planted_by_an_attacker_000000000000000000"
	u, _ := url.Parse(e.URL)
	b.hc.Jar.SetCookies(u, []*http.Cookie{{Name: access.SessionCookieName, Value: planted, Path: "/"}})
	var in api.SignInResponse
	if st, code := b.do("POST", api.PathLogin, api.LoginRequest{Login: "Alice", Password: pw}, &in); st != 200 || in.Stage != access.StageFull {
		t.Fatalf("sign in: %d %s %+v", st, code, in)
	}
	if got := b.cookie(access.SessionCookieName); got == planted || got == "" {
		t.Errorf("session cookie after sign-in = %q: the planted value was kept", got)
	}
	// Cross-origin: a page of another site cannot act with the cookie.
	b.hdr["Origin"] = "https://evil.example"
	b.hdr["Sec-Fetch-Site"] = "cross-site"
	if st, _ := b.do("POST", api.PathCollectors, api.CreateCollectorRequest{Name: "csrf"}, nil); st != 403 {
		t.Errorf("cross-site POST with the session cookie: %d, want 403", st)
	}
	delete(b.hdr, "Origin")
	b.hdr["Sec-Fetch-Site"] = "same-origin"
	if st, code := b.do("POST", api.PathCollectors, api.CreateCollectorRequest{Name: "same-origin"}, nil); st != 201 {
		t.Errorf("same-origin POST: %d %s", st, code)
	}
	// Sign out everywhere: the other session stops at once.
	other := newBrowser(t, e)
	other.do("POST", api.PathLogin, api.LoginRequest{Login: "alice", Password: pw}, nil)
	if st, _ := b.do("POST", api.PathLogoutAll, nil, nil); st != 200 {
		t.Fatalf("logout-all: %d", st)
	}
	if st, _ := other.do("GET", api.PathMe, nil, nil); st != 401 {
		t.Errorf("the other session after sign-out everywhere: %d, want 401", st)
	}
	if st, _ := b.do("GET", api.PathMe, nil, nil); st != 200 {
		t.Errorf("the caller's own session after sign-out everywhere: %d, want 200", st)
	}
}

// TestAdminSignInNeedsSecondFactor: the first admin created with the setup
// link must enroll a second factor before anything else; then TOTP at
// every sign-in, a replayed code refused; destructive acts ask for the
// second factor again after 10 minutes (step-up).
func TestAdminSignInNeedsSecondFactor(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) {})
	link := e.Server.SetupLink()
	tok := link[strings.Index(link, "token=")+len("token="):]
	b := newBrowser(t, e)
	var in api.SignInResponse
	st, code := b.do("POST", api.PathSetup, api.SetupRequest{Token: tok, Login: "root", DisplayName: "Root", Password: "first admin passphrase, long enough"}, &in)
	if st != 409 {
		// The harness already made an admin: the setup link works only on an empty platform.
		t.Fatalf("setup on a platform with a user: %d %s, want 409", st, code)
	}
	pw := createUser(t, e, "root", access.RoleAdmin)
	if st, _ := b.do("POST", api.PathLogin, api.LoginRequest{Login: "root", Password: pw}, &in); st != 200 || in.Stage != access.StageEnroll {
		t.Fatalf("admin sign-in: %d, stage %q; want enroll", st, in.Stage)
	}
	if st, code := b.do("GET", api.PathCollectors, nil, nil); st != 401 || code != api.CodeMFARequired {
		t.Errorf("enrolling session reading collectors: %d %s, want 401 mfa_required", st, code)
	}
	var enr api.TOTPEnrollment
	if st, code := b.do("POST", api.PathTOTPBegin, nil, &enr); st != 200 {
		t.Fatalf("totp begin: %d %s", st, code)
	}
	code2, _ := totp.GenerateCode(enr.Secret, e.Clock.Now())
	var codes api.RecoveryCodes
	if st, c := b.do("POST", api.PathTOTPConfirm, map[string]string{"code": code2}, &codes); st != 200 || len(codes.Codes) != 10 {
		t.Fatalf("totp confirm: %d %s %v", st, c, codes)
	}
	if st, _ := b.do("GET", api.PathCollectors, nil, nil); st != 200 {
		t.Errorf("after enrolment: %d", st)
	}
	// Next sign-in: TOTP.
	b2 := newBrowser(t, e)
	e.Clock.Advance(time.Minute)
	if st, _ := b2.do("POST", api.PathLogin, api.LoginRequest{Login: "root", Password: pw}, &in); st != 200 || in.Stage != access.StageMFA {
		t.Fatalf("second sign-in stage %q", in.Stage)
	}
	if st, c := b2.do("POST", api.PathMFATOTP, map[string]string{"code": "123456"}, nil); st != 401 || c != api.CodeSecondFactor {
		t.Errorf("wrong TOTP: %d %s", st, c)
	}
	now, _ := totp.GenerateCode(enr.Secret, e.Clock.Now())
	if st, c := b2.do("POST", api.PathMFATOTP, map[string]string{"code": now}, nil); st != 200 {
		t.Fatalf("TOTP: %d %s", st, c)
	}
	b3 := newBrowser(t, e)
	b3.do("POST", api.PathLogin, api.LoginRequest{Login: "root", Password: pw}, nil)
	if st, c := b3.do("POST", api.PathMFATOTP, map[string]string{"code": now}, nil); st != 401 || c != api.CodeSecondFactor {
		t.Errorf("replayed TOTP: %d %s, want refused", st, c)
	}
	// Step-up: within 10 minutes a destructive act passes; after, it asks.
	g, _ := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "doomed"})
	e.Clock.Advance(11 * time.Minute)
	if st, c := b2.do("DELETE", api.PathCollectors+"/"+g.Collector.ID, nil, nil); st != 403 || c != api.CodeStepUp {
		t.Errorf("delete with a second factor 11 min old: %d %s, want 403 step_up_required", st, c)
	}
	// So do a new enrollment token (it can enroll a collector) and an
	// upgrade of every collector.
	if st, c := b2.do("POST", api.PathCollectors+"/"+g.Collector.ID+"/token", nil, nil); st != 403 || c != api.CodeStepUp {
		t.Errorf("new enrollment token with a second factor 11 min old: %d %s, want 403 step_up_required", st, c)
	}
	if st, c := b2.do("POST", api.PathUpgrade, api.UpgradeRequest{All: true, Image: "127.0.0.1:1/collector:2"}, nil); st != 403 || c != api.CodeStepUp {
		t.Errorf("upgrade with a second factor 11 min old: %d %s, want 403 step_up_required", st, c)
	}
	e.Clock.Advance(time.Minute)
	fresh, _ := totp.GenerateCode(enr.Secret, e.Clock.Now())
	if st, c := b2.do("POST", api.PathMFATOTP, map[string]string{"code": fresh}, nil); st != 200 {
		t.Fatalf("step-up TOTP: %d %s", st, c)
	}
	if st, c := b2.do("DELETE", api.PathCollectors+"/"+g.Collector.ID, nil, nil); st != 204 {
		t.Errorf("delete after the step-up: %d %s", st, c)
	}
	// The audit log says who: the user, with source and agent.
	acts := auditActions(t, e, "collector.deleted")
	if len(acts) != 1 || acts[0].Actor != "user:root" || !strings.Contains(string(acts[0].Details), `"source":"127.0.0.1"`) {
		t.Errorf("collector.deleted audit = %+v", acts)
	}
}

// TestDisabledUserStopsAtOnce: a disabled user's live session and tokens
// are refused at once; role changes re-authenticate.
func TestDisabledUserStopsAtOnce(t *testing.T) {
	e := platformtest.Start(t)
	pw := createUser(t, e, "dora", access.RoleOperator)
	b := newBrowser(t, e)
	b.do("POST", api.PathLogin, api.LoginRequest{Login: "dora", Password: pw}, nil)
	tok := tokenOf(t, e, "dora", pw)
	var users api.UserList
	admin := newBrowser(t, e)
	admin.hdr["Authorization"] = "Bearer " + e.AdminToken
	admin.do("GET", api.PathUsers, nil, &users)
	var id string
	for _, u := range users.Users {
		if u.Login == "dora" {
			id = u.ID
		}
	}
	if st, c := admin.do("POST", api.PathUsers+"/"+id+"/disable", nil, nil); st != 200 {
		t.Fatalf("disable: %d %s", st, c)
	}
	if st, _ := b.do("GET", api.PathMe, nil, nil); st != 401 {
		t.Errorf("disabled user's session: %d, want 401", st)
	}
	if st, _ := collectorRaw(t, e, tok, "GET", api.PathCollectors, nil, nil); st != 401 {
		t.Errorf("disabled user's token: %d, want 401", st)
	}
	if st, c := b.do("POST", api.PathLogin, api.LoginRequest{Login: "dora", Password: pw}, nil); st != 401 || c != api.CodeBadCredentials {
		t.Errorf("disabled user's sign-in: %d %s", st, c)
	}
}

// TestDeviceLogin: `platform login`'s flow: start, approve in a signed-in
// browser, the poll gets a token once.
func TestDeviceLogin(t *testing.T) {
	e := platformtest.Start(t)
	pw := createUser(t, e, "olga", access.RoleOperator)
	dev := api.NewDeviceClient(e.URL, e.HTTP)
	st, err := dev.Start(ctx)
	if err != nil || !strings.Contains(st.VerificationURL, "/device?code="+st.UserCode) {
		t.Fatalf("start = %+v, %v", st, err)
	}
	if _, err := dev.Token(ctx, st.DeviceCode); api.CodeOf(err) != api.CodeAuthorizationPending {
		t.Fatalf("poll before approval: %v", err)
	}
	b := newBrowser(t, e)
	b.do("POST", api.PathLogin, api.LoginRequest{Login: "olga", Password: pw}, nil)
	if s, c := b.do("POST", api.PathDeviceApprove, api.DeviceApproveRequest{UserCode: strings.ToLower(strings.ReplaceAll(st.UserCode, "-", ""))}, nil); s != 204 {
		t.Fatalf("approve: %d %s", s, c)
	}
	tok, err := dev.Token(ctx, st.DeviceCode)
	if err != nil || !strings.HasPrefix(tok.Token, access.APITokenPrefix) || tok.ExpiresAt.Sub(tok.CreatedAt) != access.DeviceTokenTTL {
		t.Fatalf("token = %+v, %v", tok, err)
	}
	me, err := api.NewAdminClient(e.URL, tok.Token, e.HTTP).Me(ctx)
	if err != nil || me.User.Login != "olga" || me.Role != "operator" {
		t.Errorf("me with the device token = %+v, %v", me, err)
	}
	if _, err := dev.Token(ctx, st.DeviceCode); api.StatusOf(err) != 401 {
		t.Errorf("a second poll after the token: %v, want 401", err)
	}
}

// TestSetupLinkCreatesFirstAdmin: on a platform with no user, the setup
// link creates the first admin, once.
func TestSetupLinkCreatesFirstAdmin(t *testing.T) {
	e := platformtest.StartEmpty(t)
	link := e.Server.SetupLink()
	if link == "" {
		t.Fatal("no setup link on an empty platform")
	}
	tok := link[strings.Index(link, "token=")+len("token="):]
	// An operator made on the host (automation: the demo's) does not end
	// the setup: the platform still has no administrator.
	dd, err := platform.OpenDataDir(e.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := platform.OpenAccess(e.Config, dd, e.Store, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, access.CreateUserRequest{Login: "automation", Role: access.RoleOperator}, "break-glass:test", access.Meta{}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, e)
	if st, c := b.do("POST", api.PathSetup, api.SetupRequest{Token: tok + "x", Login: "root", Password: "first admin passphrase, long enough"}, nil); st != 401 {
		t.Errorf("setup with a wrong token: %d %s", st, c)
	}
	if st, c := b.do("POST", api.PathSetup, api.SetupRequest{Token: tok, Login: "root", Password: "short"}, nil); st != 400 {
		t.Errorf("setup with a weak password: %d %s", st, c)
	}
	var in api.SignInResponse
	if st, c := b.do("POST", api.PathSetup, api.SetupRequest{Token: tok, Login: "root", DisplayName: "Root", Password: "first admin passphrase, long enough"}, &in); st != 200 || in.Stage != access.StageEnroll || in.User.Role != "admin" {
		t.Fatalf("setup: %d %s %+v", st, c, in)
	}
	if st, _ := newBrowser(t, e).do("POST", api.PathSetup, api.SetupRequest{Token: tok, Login: "root2", Password: "first admin passphrase, long enough"}, nil); st == 200 {
		t.Error("the setup link worked twice")
	}
	if e.Server.SetupLink() != "" {
		t.Error("the setup link file outlived the setup")
	}
}

// BenchmarkAuthenticatedCall: an API call with a token against /healthz
// (P8: ≤ 0.2 ms more at the median).
func BenchmarkAuthenticatedCall(b *testing.B) {
	e := platformtest.Start(b)
	call := func(path, tok string) time.Duration {
		req, _ := http.NewRequest("GET", e.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		start := time.Now()
		resp, err := e.HTTP.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start)
	}
	var auth, base []time.Duration
	for b.Loop() {
		base = append(base, call(api.PathHealthz, ""))
		auth = append(auth, call(api.PathMe, e.AdminToken))
	}
	pa, pb := percentile(auth, 0.5), percentile(base, 0.5)
	b.ReportMetric(float64(pa.Microseconds()), "auth-p50-µs")
	b.ReportMetric(float64(pb.Microseconds()), "healthz-p50-µs")
	b.ReportMetric(float64((pa - pb).Microseconds()), "added-p50-µs")
}
