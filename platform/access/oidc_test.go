package access_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/collectorhq/collector/internal/oidctest"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

const callbackURL = "https://platform.test/auth/oidc/callback"

func ssoSettings(p *oidctest.Provider) access.SSOSettings {
	return access.SSOSettings{Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret, CABundle: string(p.CAPEM),
		GroupRoles: map[string]access.Role{"ops": access.RoleOperator}}
}

// TestSSOSettingsValidate: each bad field is refused and named.
func TestSSOSettingsValidate(t *testing.T) {
	good := func() access.SSOSettings {
		return access.SSOSettings{Issuer: "https://idp.example.com/realms/x", ClientID: "collector", ClientSecret: "s3cret",
			GroupRoles: map[string]access.Role{"admins": access.RoleAdmin}}
	}
	for _, tc := range []struct {
		field string
		edit  func(*access.SSOSettings)
	}{
		{"issuer", func(c *access.SSOSettings) { c.Issuer = "" }},
		{"issuer", func(c *access.SSOSettings) { c.Issuer = "http://idp.example.com" }},
		{"issuer", func(c *access.SSOSettings) { c.Issuer = "https://user:pw@idp.example.com" }},
		{"issuer", func(c *access.SSOSettings) { c.Issuer = "https://idp.example.com/?x=1" }},
		{"client-id", func(c *access.SSOSettings) { c.ClientID = "" }},
		{"client-id", func(c *access.SSOSettings) { c.ClientID = "a\x1b[2Jb" }},
		{"client-secret", func(c *access.SSOSettings) { c.ClientSecret = strings.Repeat("x", 2000) }},
		{"allowed-domains", func(c *access.SSOSettings) { c.AllowedDomains = []string{"not a domain"} }},
		{"allowed-domains", func(c *access.SSOSettings) { c.AllowedDomains = []string{"localhost"} }},
		{"required-claim", func(c *access.SSOSettings) { c.RequiredClaim = "tenant" }},
		{"required-claim", func(c *access.SSOSettings) { c.RequiredClaim = "=x" }},
		{"groups-claim", func(c *access.SSOSettings) { c.GroupsClaim = "gr oups" }},
		{"group-roles", func(c *access.SSOSettings) { c.GroupRoles = nil }},
		{"group-roles", func(c *access.SSOSettings) { c.GroupRoles = map[string]access.Role{"x": "root"} }},
		{"ca-bundle", func(c *access.SSOSettings) { c.CABundle = "not PEM" }},
		{"ca-bundle", func(c *access.SSOSettings) {
			c.CABundle = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
		}},
	} {
		c := good()
		tc.edit(&c)
		c.Normalize()
		err := c.Validate()
		if !errors.Is(err, access.ErrInvalid) || !strings.Contains(err.Error(), "sso "+tc.field) {
			t.Errorf("%+v: %v, want a refusal naming %s", c, err, tc.field)
		}
	}
	c := good()
	c.Issuer, c.AllowedDomains = "http://127.0.0.1:9000", []string{"@Example.COM", "example.com"}
	c.Normalize()
	if err := c.Validate(); err != nil || len(c.AllowedDomains) != 1 || c.AllowedDomains[0] != "example.com" || c.GroupsClaim != "groups" {
		t.Errorf("loopback http issuer, domains %v, groups claim %q: %v", c.AllowedDomains, c.GroupsClaim, err)
	}
}

// TestSSOSecretSealedAndKept: the client secret is stored sealed (not in
// the settings row, not in the audit log), kept by a change without one
// for the same client, required for another client; disabling removes
// the settings.
func TestSSOSecretSealedAndKept(t *testing.T) { eachBackend(t, testSSOSecretSealedAndKept) }

func testSSOSecretSealedAndKept(t *testing.T, b backend) {
	e := newEnv(t, b)
	p := oidctest.Start(t, oidctest.Config{RedirectURI: callbackURL})
	sso := access.NewSSO(e.svc, callbackURL)
	if _, err := sso.Settings(ctx); !errors.Is(err, access.ErrSSODisabled) {
		t.Fatalf("settings before any: %v", err)
	}
	c := ssoSettings(p)
	if _, err := sso.Put(ctx, c, "test", meta); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, e)
	var row string
	if err := db.QueryRow(`SELECT value FROM settings WHERE key = 'sso_oidc'`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	var audit strings.Builder
	rows, _ := db.Query(`SELECT action, details FROM audit_log`)
	for rows.Next() {
		var a, d string
		rows.Scan(&a, &d)
		audit.WriteString(a + " " + d + "\n")
	}
	rows.Close()
	if strings.Contains(row, p.ClientSecret) || strings.Contains(audit.String(), p.ClientSecret) {
		t.Fatal("the client secret is stored or audited in clear")
	}
	if !strings.Contains(audit.String(), "sso.settings_changed") {
		t.Errorf("the change is not audited:\n%s", audit.String())
	}
	c.ClientSecret, c.GroupRoles = "", map[string]access.Role{"ops": access.RoleViewer}
	if _, err := sso.Put(ctx, c, "test", meta); err != nil {
		t.Fatalf("a change without the secret, same client: %v", err)
	}
	if _, _, err := sso.Begin(ctx, "/"); err != nil {
		t.Fatalf("the kept secret's settings do not start a flow: %v", err)
	}
	c.ClientID = "another-client"
	if _, err := sso.Put(ctx, c, "test", meta); !errors.Is(err, access.ErrInvalid) || !strings.Contains(err.Error(), "client-secret") {
		t.Errorf("another client without a secret: %v", err)
	}
	if err := sso.Disable(ctx, "test", meta); err != nil || sso.Enabled(ctx) {
		t.Fatalf("disable: %v, enabled %v", err, sso.Enabled(ctx))
	}
	if err := sso.Disable(ctx, "test", meta); !errors.Is(err, access.ErrSSODisabled) {
		t.Errorf("disable twice: %v", err)
	}
	if _, _, err := sso.Begin(ctx, "/"); !errors.Is(err, access.ErrSSODisabled) {
		t.Errorf("begin once disabled: %v", err)
	}
}

// TestSSOSettingsTampered: a group mapping changed in the database (to
// make a group admin) switches single sign-on off instead.
func TestSSOSettingsTampered(t *testing.T) { eachBackend(t, testSSOSettingsTampered) }

func testSSOSettingsTampered(t *testing.T, b backend) {
	e := newEnv(t, b)
	p := oidctest.Start(t, oidctest.Config{RedirectURI: callbackURL})
	sso := access.NewSSO(e.svc, callbackURL)
	if _, err := sso.Put(ctx, ssoSettings(p), "test", meta); err != nil {
		t.Fatal(err)
	}
	if _, err := rawDB(t, e).Exec(`UPDATE settings SET value = replace(value, '"operator"', '"admin"') WHERE key = 'sso_oidc'`); err != nil {
		t.Fatal(err)
	}
	if _, err := sso.Settings(ctx); !errors.Is(err, store.ErrIntegrity) {
		t.Errorf("tampered settings: %v, want an integrity error", err)
	}
	if sso.Enabled(ctx) {
		t.Error("tampered settings still enable single sign-on")
	}
	if _, _, err := sso.Begin(ctx, "/"); err == nil {
		t.Error("a flow began under tampered settings")
	}
}

// TestSSOFlowCookie: the flow cookie is sealed: one changed byte, another
// flow's state, or a flow past its lifetime are refused and audited.
func TestSSOFlowCookie(t *testing.T) { eachBackend(t, testSSOFlowCookie) }

func testSSOFlowCookie(t *testing.T, b backend) {
	e := newEnv(t, b)
	p := oidctest.Start(t, oidctest.Config{RedirectURI: callbackURL})
	sso := access.NewSSO(e.svc, callbackURL)
	if _, err := sso.Put(ctx, ssoSettings(p), "test", meta); err != nil {
		t.Fatal(err)
	}
	authURL, cookie, err := sso.Begin(ctx, "/x")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(authURL)
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || len(q.Get("state")) < 40 || q.Get("redirect_uri") != callbackURL {
		t.Errorf("authorization URL %s: want PKCE S256, a nonce, a 256-bit state and the callback", authURL)
	}
	if strings.Contains(cookie, q.Get("state")) || strings.Contains(cookie, q.Get("nonce")) {
		t.Error("the flow cookie shows its state or nonce: it must be sealed")
	}
	state := q.Get("state")
	flipped := []byte(cookie)
	flipped[len(flipped)/2] ^= 1
	for name, tc := range map[string]struct{ cookie, state, want string }{
		"changed cookie": {string(flipped), state, "no sign-in was started"},
		"no cookie":      {"", state, "no sign-in was started"},
		"other state":    {cookie, "not-" + state, "state does not match"},
	} {
		_, _, err := sso.Finish(ctx, tc.cookie, access.SSOCallback{Code: "c", State: tc.state}, meta)
		var se *access.SSOError
		if !errors.As(err, &se) || se.Policy || !strings.Contains(se.Reason, tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", name, err, tc.want)
		}
	}
	e.clock.Advance(access.SSOFlowLifetime + 1)
	if _, _, err := sso.Finish(ctx, cookie, access.SSOCallback{Code: "c", State: state}, meta); err == nil || !strings.Contains(err.Error(), "took longer") {
		t.Errorf("an expired flow: %v", err)
	}
	var failed int
	rawDB(t, e).QueryRow(`SELECT count(*) FROM audit_log WHERE action = 'user.sign_in_failed'`).Scan(&failed)
	if failed != 4 {
		t.Errorf("%d refusals audited, want 4", failed)
	}
}

// TestSSOIdentityRules: email domain (verified only), required claim,
// groups (the highest mapped role wins; none mapped is a refusal, not a
// viewer), the login from preferred_username or the email.
func TestSSOIdentityRules(t *testing.T) {
	c := access.SSOSettings{AllowedDomains: []string{"example.com"}, RequiredClaim: "tenant=t1", GroupsClaim: "roles",
		GroupRoles: map[string]access.Role{"view": access.RoleViewer, "ops": access.RoleOperator, "root": access.RoleAdmin}}
	base := func() map[string]any {
		return map[string]any{"email": "Ada@Example.com", "email_verified": true, "tenant": "t1", "roles": []any{"view", "ops"},
			"preferred_username": "Ada.L"}
	}
	for _, tc := range []struct {
		name   string
		edit   func(map[string]any)
		login  string
		role   access.Role
		refuse string // "" = accepted
	}{
		{"highest role wins", nil, "ada.l", access.RoleOperator, ""},
		{"login from the email", func(m map[string]any) { delete(m, "preferred_username") }, "ada@example.com", access.RoleOperator, ""},
		{"verified as a string", func(m map[string]any) { m["email_verified"] = "true" }, "ada.l", access.RoleOperator, ""},
		{"one group as a string", func(m map[string]any) { m["roles"] = "root" }, "ada.l", access.RoleAdmin, ""},
		{"claim in a list", func(m map[string]any) { m["tenant"] = []any{"t0", "t1"} }, "ada.l", access.RoleOperator, ""},
		{"no mapped group", func(m map[string]any) { m["roles"] = []any{"marketing"} }, "", "", "maps to a role"},
		{"no groups claim", func(m map[string]any) { delete(m, "roles") }, "", "", "maps to a role"},
		{"groups not strings", func(m map[string]any) { m["roles"] = []any{1.0} }, "", "", "not a list of group names"},
		{"other domain", func(m map[string]any) { m["email"] = "ada@example.com.evil.test" }, "", "", "domain example.com.evil.test is not allowed"},
		{"subdomain", func(m map[string]any) { m["email"] = "ada@corp.example.com" }, "", "", "is not allowed"},
		{"unverified email", func(m map[string]any) { m["email_verified"] = false }, "", "", "verified"},
		{"no verification", func(m map[string]any) { delete(m, "email_verified") }, "", "", "verified"},
		{"no email", func(m map[string]any) { delete(m, "email") }, "", "", "no email"},
		{"wrong tenant", func(m map[string]any) { m["tenant"] = "t2" }, "", "", "required claim tenant=t1"},
		{"no tenant", func(m map[string]any) { delete(m, "tenant") }, "", "", "required claim"},
	} {
		m := base()
		if tc.edit != nil {
			tc.edit(m)
		}
		login, role, err := access.SSOIdentity(c, "https://idp", "sub-1", m)
		var se *access.SSOError
		switch {
		case tc.refuse == "" && (err != nil || login != tc.login || role != tc.role):
			t.Errorf("%s: %q %q %v, want %q %q", tc.name, login, role, err, tc.login, tc.role)
		case tc.refuse != "" && (!errors.As(err, &se) || !se.Policy || !strings.Contains(se.Reason, tc.refuse)):
			t.Errorf("%s: %q %q %v, want a policy refusal saying %q", tc.name, login, role, err, tc.refuse)
		}
	}
	if _, _, err := access.SSOIdentity(c, "https://idp", "", base()); err == nil {
		t.Error("an empty subject was accepted")
	}
	noName := map[string]any{"roles": []any{"view"}, "email": "x@example.com", "email_verified": true, "tenant": "t1", "preferred_username": "a b"}
	if login, _, err := access.SSOIdentity(c, "https://idp", "s", noName); err != nil || login != "x@example.com" {
		t.Errorf("a preferred_username with a space: login %q %v, want the email", login, err)
	}
}

// TestParseSSOCallback: what the callback accepts and refuses.
func TestParseSSOCallback(t *testing.T) {
	ok := map[string]access.SSOCallback{
		"code=abc&state=xyz": {Code: "abc", State: "xyz"},
		"code=abc&state=xyz&session_state=1&iss=https%3A%2F%2Fi": {Code: "abc", State: "xyz", Issuer: "https://i"},
		"error=access_denied&state=xyz&error_description=User+said+no%0A%1b[31m": {Error: "access_denied", State: "xyz",
			ErrorDescription: "User said no  [31m"},
	}
	for q, want := range ok {
		got, err := access.ParseSSOCallback(q)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", q, got, err, want)
		}
	}
	for _, q := range []string{"", "code=abc", "state=xyz", "code=a&code=b&state=x", "code=abc&state=x&state=y",
		"code=%zz&state=x", "code=a%00b&state=x", "code=a+b&state=x", "code=" + strings.Repeat("a", 3000) + "&state=x",
		"code=a&state=" + strings.Repeat("s", 600), strings.Repeat("x=1&", 3000)} {
		if cb, err := access.ParseSSOCallback(q); !errors.Is(err, access.ErrInvalid) {
			t.Errorf("%.60q: %+v %v, want refused", q, cb, err)
		}
	}
}

// FuzzParseSSOCallback: any query parses or is refused without a panic;
// what parses is bounded, printable and parses the same again.
func FuzzParseSSOCallback(f *testing.F) {
	for _, s := range []string{"code=abc&state=xyz", "error=access_denied&error_description=%e2%80%ae", "code=a&code=b", "%", "iss=x&code=1&state=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		cb, err := access.ParseSSOCallback(q)
		if err != nil {
			return
		}
		if cb.Error == "" && (cb.Code == "" || cb.State == "") {
			t.Fatalf("%q: accepted without code and state: %+v", q, cb)
		}
		if len(cb.Code) > 2048 || len(cb.State) > 512 || len(cb.ErrorDescription) > 512 {
			t.Fatalf("%q: unbounded %+v", q, cb)
		}
		for _, v := range []string{cb.Code, cb.State, cb.Error, cb.ErrorDescription, cb.Issuer} {
			for _, r := range v {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u202e' {
					t.Fatalf("%q: control character in %q", q, v)
				}
			}
		}
		again := url.Values{}
		for k, v := range map[string]string{"code": cb.Code, "state": cb.State, "error": cb.Error, "iss": cb.Issuer} {
			if v != "" {
				again.Set(k, v)
			}
		}
		if cb.ErrorDescription != "" {
			again.Set("error_description", cb.ErrorDescription)
		}
		cb2, err := access.ParseSSOCallback(again.Encode())
		if err != nil || cb2 != cb {
			t.Fatalf("%q: %+v does not parse the same again: %+v %v", q, cb, cb2, err)
		}
	})
}
