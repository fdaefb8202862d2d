package platform_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/platformtest"
)

// The session cookie is for this origin's pages only: __Host-, Secure,
// HttpOnly, SameSite=Strict, Path=/.
func TestSessionCookieAttributes(t *testing.T) {
	e := platformtest.Start(t)
	pw := createUser(t, e, "cookie-user", access.RoleViewer)
	body, _ := json.Marshal(api.LoginRequest{Login: "cookie-user", Password: pw})
	resp, err := e.HTTP.Post(e.URL+api.PathLogin, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == access.SessionCookieName {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no %s cookie in %v", access.SessionCookieName, resp.Header["Set-Cookie"])
	}
	if !strings.HasPrefix(session.Name, "__Host-") || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Domain != "" {
		t.Errorf("session cookie = %+v, want __Host-, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", session)
	}
}

// --require-mfa: every user, not only admins, enrols a second factor
// before anything else.
func TestRequireMFAForAll(t *testing.T) {
	for _, require := range []bool{false, true} {
		e := platformtest.Start(t, func(c *platform.Config) { c.Access.RequireMFAForAll = require })
		pw := createUser(t, e, "op", access.RoleOperator)
		var in api.SignInResponse
		if st, c := newBrowser(t, e).do("POST", api.PathLogin, api.LoginRequest{Login: "op", Password: pw}, &in); st != 200 {
			t.Fatalf("sign-in: %d %s", st, c)
		}
		want := access.StageFull
		if require {
			want = access.StageEnroll
		}
		if in.Stage != want {
			t.Errorf("require-mfa %v: an operator's sign-in stage = %q, want %q", require, in.Stage, want)
		}
	}
}

// API tokens: creation and revocation are audited, the last use is kept
// (once a minute at most), and an admin-role token, like a role change,
// needs a recent second factor.
func TestTokensAuditedAndStepUp(t *testing.T) {
	e := platformtest.Start(t)
	pw := createUser(t, e, "root", access.RoleAdmin)
	b := newBrowser(t, e)
	b.do("POST", api.PathLogin, api.LoginRequest{Login: "root", Password: pw}, nil)
	var enr api.TOTPEnrollment
	if st, c := b.do("POST", api.PathTOTPBegin, nil, &enr); st != 200 {
		t.Fatalf("totp begin: %d %s", st, c)
	}
	code, _ := totp.GenerateCode(enr.Secret, e.Clock.Now())
	if st, c := b.do("POST", api.PathTOTPConfirm, map[string]string{"code": code}, nil); st != 200 {
		t.Fatalf("totp confirm: %d %s", st, c)
	}

	var tok api.CreatedToken
	if st, c := b.do("POST", api.PathMyTokens, api.CreateTokenRequest{Name: "deploy", Role: "admin"}, &tok); st != 201 {
		t.Fatalf("an admin token with a fresh second factor: %d %s", st, c)
	}
	if got := auditActions(t, e, "token.created"); len(got) == 0 || got[len(got)-1].Target != tok.ID {
		t.Errorf("token.created audit = %+v, want one for %s", got, tok.ID)
	}
	// Used: the last use is recorded.
	if st, where, _ := pageAs(t, e, tok.Token).get("/collectors"); st != 200 || where != "/collectors" {
		t.Fatalf("the token does not work: %d at %s", st, where)
	}
	var mine api.APITokenList
	b.do("GET", api.PathMyTokens, nil, &mine)
	var used bool
	for _, x := range mine.Tokens {
		used = used || x.ID == tok.ID && x.LastUsedAt != nil
	}
	if !used {
		t.Errorf("the token's last use is not recorded: %+v", mine.Tokens)
	}
	if st, c := b.do("DELETE", api.PathMyTokens+"/"+tok.ID, nil, nil); st != 204 {
		t.Fatalf("revoke: %d %s", st, c)
	}
	if got := auditActions(t, e, "token.revoked"); len(got) == 0 || got[len(got)-1].Target != tok.ID {
		t.Errorf("token.revoked audit = %+v, want one for %s", got, tok.ID)
	}
	if _, where, _ := pageAs(t, e, tok.Token).get("/collectors"); !strings.HasPrefix(where, "/login") {
		t.Errorf("a revoked token still works (at %s, not sent to sign in)", where)
	}

	// The second factor grows old: an admin-role token and a role change
	// ask for it again; a viewer-role token does not.
	e.Clock.Advance(11 * time.Minute)
	if st, c := b.do("POST", api.PathMyTokens, api.CreateTokenRequest{Name: "late", Role: "admin"}, nil); st != 403 || c != api.CodeStepUp {
		t.Errorf("an admin token with a second factor 11 min old: %d %s, want 403 step_up_required", st, c)
	}
	if st, c := b.do("POST", api.PathMyTokens, api.CreateTokenRequest{Name: "reader", Role: "viewer"}, nil); st != 201 {
		t.Errorf("a viewer token: %d %s", st, c)
	}
	createUser(t, e, "someone", access.RoleViewer)
	var users api.UserList
	b.do("GET", api.PathUsers, nil, &users)
	var id string
	for _, u := range users.Users {
		if u.Login == "someone" {
			id = u.ID
		}
	}
	if st, c := b.do("POST", api.PathUsers+"/"+id+"/role", api.RoleRequest{Role: "operator"}, nil); st != 403 || c != api.CodeStepUp {
		t.Errorf("a role change with an old second factor: %d %s, want 403 step_up_required", st, c)
	}
}

// /metrics needs its token unless the platform is told its network is
// trusted.
func TestMetricsPublicSetting(t *testing.T) {
	for _, public := range []bool{false, true} {
		e := platformtest.Start(t, func(c *platform.Config) { c.MetricsPublic = public })
		resp, err := e.HTTP.Get(e.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusUnauthorized
		if public {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("metrics-public %v: GET /metrics without a token = %d, want %d", public, resp.StatusCode, want)
		}
	}
}
