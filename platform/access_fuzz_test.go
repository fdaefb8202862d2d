package platform_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/platformtest"
)

// FuzzLoginEndpoint: the sign-in endpoint answers every body with a 4xx
// JSON error (or a sign-in for the one right password), never a 5xx, and
// never signs in with anything but that password.
func FuzzLoginEndpoint(f *testing.F) {
	e := platformtest.Start(f)
	good, _ := json.Marshal(api.LoginRequest{Login: platformtest.AdminLogin, Password: platformtest.AdminPassword})
	f.Add(good)
	f.Add([]byte(`{"login":"` + platformtest.AdminLogin + `","password":""}`))
	f.Add([]byte(`{"login":"\u0000","password":"x"}`))
	f.Add([]byte(`{"login":123}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"login":"a","password":"b","extra":1}`))
	h := e.Server.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		code := fuzzEndpoint(t, h, api.PathLogin, "", body)
		if code == 200 {
			var req api.LoginRequest
			if json.Unmarshal(body, &req) != nil || req.Password != platformtest.AdminPassword {
				t.Fatalf("signed in with %s", body)
			}
		}
	})
}

// FuzzAuthenticate: any Authorization header or session cookie that is not
// a live credential is refused (401), never a 5xx, never let through.
func FuzzAuthenticate(f *testing.F) {
	e := platformtest.Start(f)
	h := e.Server.Handler()
	f.Add("Bearer "+e.AdminToken+"x", "")
	f.Add("Bearer cpat_", "")
	f.Add("bearer "+strings.ToUpper(e.AdminToken), "")
	f.Add("", "csess_AAAA")
	f.Add("Basic YWRtaW46YWRtaW4=", "csess_"+strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, authorization, cookie string) {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(authorization, "Bearer "), "bearer ")) == e.AdminToken {
			return // the live token itself
		}
		req := httptest.NewRequest("GET", api.PathCollectors, nil)
		if authorization != "" && validHeader(authorization) {
			req.Header.Set("Authorization", authorization)
		}
		if cookie != "" && validHeader(cookie) {
			req.AddCookie(&http.Cookie{Name: access.SessionCookieName, Value: cookie})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Fatalf("Authorization %q, cookie %q: %d, want 401", authorization, cookie, rec.Code)
		}
	})
}

func validHeader(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsAny(s, "\r\n\x00") && len(s) < 4096
}

// FuzzNormalizeLogin: a normalized login is stable, bounded and printable.
func FuzzNormalizeLogin(f *testing.F) {
	for _, s := range []string{"alice", "  Álvaro ", "A\u0301lvaro", "bob\u202e", strings.Repeat("é", 70), "a b", "\x1b[2J"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := access.NormalizeLogin(s)
		if err != nil {
			return
		}
		again, err := access.NormalizeLogin(n)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		if n == "" || utf8.RuneCountInString(n) > access.MaxLoginRunes || strings.ContainsAny(n, " \t\r\n\x1b") {
			t.Fatalf("normalized %q to %q", s, n)
		}
	})
}
