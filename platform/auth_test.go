package platform_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

func TestTokenExchange(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "auth")
	aud := e.Server.Audience()
	sign := func(t *testing.T, id string, at time.Time) string {
		t.Helper()
		s, err := crypto.SignAssertion(c.Key, id, aud, at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("ok", func(t *testing.T) {
		tr, err := c.Client.Exchange(ctx, sign(t, c.ID, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tr.AccessToken, api.AccessTokenPrefix) || tr.ExpiresIn != 900 || tr.TokenType != "Bearer" {
			t.Errorf("token response = %+v", tr)
		}
		grepDB(t, e, tr.AccessToken)
	})
	t.Run("replay", func(t *testing.T) {
		a := sign(t, c.ID, time.Now())
		if _, err := c.Client.Exchange(ctx, a); err != nil {
			t.Fatal(err)
		}
		_, err := c.Client.Exchange(ctx, a)
		wantAPIError(t, err, 401, api.CodeInvalidAssert)
	})
	t.Run("expired", func(t *testing.T) {
		_, err := c.Client.Exchange(ctx, sign(t, c.ID, time.Now().Add(-2*time.Minute)))
		wantAPIError(t, err, 401, api.CodeInvalidAssert)
	})
	t.Run("wrong key", func(t *testing.T) {
		other, _ := platformtest.NewKeys(t)
		a, _ := crypto.SignAssertion(other, c.ID, aud, time.Now())
		_, err := c.Client.Exchange(ctx, a)
		wantAPIError(t, err, 401, api.CodeInvalidAssert)
	})
	t.Run("wrong audience", func(t *testing.T) {
		a, _ := crypto.SignAssertion(c.Key, c.ID, "https://elsewhere.example", time.Now())
		_, err := c.Client.Exchange(ctx, a)
		wantAPIError(t, err, 401, api.CodeInvalidAssert)
	})
	t.Run("unknown collector", func(t *testing.T) {
		_, err := c.Client.Exchange(ctx, sign(t, "col_"+strings.Repeat("a", 26), time.Now()))
		wantAPIError(t, err, 401, api.CodeInvalidAssert)
	})
	t.Run("pending collector", func(t *testing.T) {
		g, _ := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "pending"})
		_, err := c.Client.Exchange(ctx, sign(t, g.Collector.ID, time.Now()))
		wantAPIError(t, err, 401, api.CodeInvalidAssert)
	})
	t.Run("garbage", func(t *testing.T) {
		_, err := c.Client.Exchange(ctx, "a.b.c")
		wantAPIError(t, err, 401, api.CodeInvalidAssert)
	})
	t.Run("access token expires", func(t *testing.T) {
		tr, err := c.Client.Exchange(ctx, sign(t, c.ID, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(16 * time.Minute)
		defer e.Clock.Advance(-16 * time.Minute)
		st, body := e.Raw(t, "POST", api.PathHeartbeat, tr.AccessToken, "application/json", []byte(`{}`))
		if st != 401 || !strings.Contains(string(body), api.CodeUnauthorized) {
			t.Errorf("expired access token: %d %s", st, body)
		}
	})
}

// TestCollectorScope: a collector's access token acts only on that
// collector; identity comes from the token, never from the request.
func TestCollectorScope(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	b := e.EnrollNew(t, "b")
	if err := b.Client.Heartbeat(ctx, api.Heartbeat{Version: "b-1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Heartbeat(ctx, api.Heartbeat{Version: "a-1"}); err != nil {
		t.Fatal(err)
	}
	gotA, _ := e.Admin.Collector(ctx, a.ID)
	gotB, _ := e.Admin.Collector(ctx, b.ID)
	if gotA.LastHeartbeat.Version != "a-1" || gotB.LastHeartbeat.Version != "b-1" {
		t.Fatalf("heartbeats crossed: a=%q b=%q", gotA.LastHeartbeat.Version, gotB.LastHeartbeat.Version)
	}

	// A cannot sign as B: its key is not B's.
	forged, _ := crypto.SignAssertion(a.Key, b.ID, e.Server.Audience(), time.Now())
	_, err := a.Client.Exchange(ctx, forged)
	wantAPIError(t, err, 401, api.CodeInvalidAssert)

	// A's access token cannot name B anywhere: unknown fields are refused.
	tokA, err := a.Client.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, body := e.Raw(t, "POST", api.PathHeartbeat, tokA, "application/json", []byte(`{"collector_id":"`+b.ID+`","version":"evil"}`))
	if st != 400 {
		t.Errorf("heartbeat naming B: %d %s", st, body)
	}
	st, _ = e.Raw(t, "POST", api.PathHeartbeat+"?collector_id="+b.ID, tokA, "application/json", []byte(`{"version":"a-2"}`))
	if st != 204 {
		t.Errorf("heartbeat: %d", st)
	}
	gotA, _ = e.Admin.Collector(ctx, a.ID)
	gotB, _ = e.Admin.Collector(ctx, b.ID)
	if gotA.LastHeartbeat.Version != "a-2" || gotB.LastHeartbeat.Version != "b-1" {
		t.Errorf("after A's heartbeat: a=%q b=%q", gotA.LastHeartbeat.Version, gotB.LastHeartbeat.Version)
	}
	// A's token cannot read B's (or anyone's) data through the admin API.
	for _, p := range []string{api.PathCollectors, api.PathCollectors + "/" + b.ID, api.PathCollectors + "/" + b.ID + "/heartbeats",
		api.PathIntegrations, api.PathAudit} {
		if st, _ := e.Raw(t, "GET", p, tokA, "", nil); st != 401 {
			t.Errorf("GET %s with a collector token: %d, want 401", p, st)
		}
	}
	// And the admin token is no collector credential.
	if st, _ := e.Raw(t, "POST", api.PathHeartbeat, e.AdminToken, "application/json", []byte(`{}`)); st != 401 {
		t.Errorf("heartbeat with the admin token: %d, want 401", st)
	}
}

func TestDeleteCollector(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "doomed")
	other := e.EnrollNew(t, "other")
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "ldap-users", Image: "localhost/ldap:1",
		Config: []byte(`{"url":"ldap://x"}`), IntervalSec: 3600, CollectorID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Admin.DeleteCollector(ctx, c.ID)
	wantAPIError(t, err, 409, api.CodeAssigned)
	if !strings.Contains(err.Error(), "ldap-users") || !strings.Contains(err.Error(), in.ID) {
		t.Errorf("refusal does not name the integration: %v", err)
	}
	if err := c.Client.Heartbeat(ctx, api.Heartbeat{}); err != nil {
		t.Fatalf("collector should still work after a refused delete: %v", err)
	}
	if _, err := e.Admin.AssignIntegration(ctx, in.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	tok, err := c.Client.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Admin.DeleteCollector(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.Admin.Collector(ctx, c.ID)
	wantAPIError(t, err, 404, api.CodeNotFound)
	// Its credentials died with it: the access token it holds, and its key
	// (the client's retry with a fresh assertion is refused too).
	if st, body := e.Raw(t, "POST", api.PathHeartbeat, tok, "application/json", []byte(`{}`)); st != 401 {
		t.Errorf("heartbeat with a deleted collector's token: %d %s", st, body)
	}
	wantAPIError(t, c.Client.Heartbeat(ctx, api.Heartbeat{}), 401, api.CodeInvalidAssert)
	_, err = c.Client.ExchangeAssertion(ctx)
	wantAPIError(t, err, 401, api.CodeInvalidAssert)
	wantAPIError(t, e.Admin.DeleteCollector(ctx, c.ID), 404, api.CodeNotFound)
}

func TestAdminAuth(t *testing.T) {
	e := platformtest.Start(t)
	before := e.AuditLen(t)
	for _, tok := range []string{"", "cpat_wrong", "cadm_old_admin_token", e.AdminToken + "x", "Basic abc"} {
		bad := api.NewAdminClient(e.URL, tok, e.HTTP)
		_, err := bad.Collectors(ctx)
		wantAPIError(t, err, 401, api.CodeUnauthorized)
		_, err = bad.CreateCollector(ctx, api.CreateCollectorRequest{Name: "x"})
		wantAPIError(t, err, 401, api.CodeUnauthorized)
	}
	if n := e.AuditLen(t); n != before {
		t.Errorf("audit has %d entries after refused calls, %d before", n, before)
	}
}

func TestConfigValidate(t *testing.T) {
	for field, edit := range map[string]func(*platform.Config){
		"listen":             func(c *platform.Config) { c.Listen = "nope" },
		"data-dir":           func(c *platform.Config) { c.DataDir = "" },
		"public-url":         func(c *platform.Config) { c.PublicURL = "http://insecure.example" },
		"tls-cert":           func(c *platform.Config) { c.TLSCert = "/x.pem" },
		"heartbeat-interval": func(c *platform.Config) { c.HeartbeatInterval = 0 },
		"collector-image":    func(c *platform.Config) { c.CollectorImage = "x; rm -rf /" },
	} {
		c := platform.DefaultConfig()
		edit(&c)
		err := c.Validate()
		ce, ok := err.(*platform.ConfigError)
		if !ok || ce.Field != field {
			t.Errorf("%s: err = %v, want a ConfigError naming it", field, err)
		}
	}
	if err := platform.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
}

func TestHealthz(t *testing.T) {
	e := platformtest.Start(t)
	st, body := e.Raw(t, http.MethodGet, api.PathHealthz, "", "", nil)
	if st != 200 || !strings.Contains(string(body), "ok") {
		t.Errorf("healthz: %d %s", st, body)
	}
}

// TestClientRenewsOn401: when the platform drops an access token early, the
// collector client exchanges a fresh assertion and retries once.
func TestClientRenewsOn401(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "renew")
	if err := c.Client.Heartbeat(ctx, api.Heartbeat{Version: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := openRaw(t, e).Exec(`DELETE FROM access_tokens`); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Heartbeat(ctx, api.Heartbeat{Version: "2"}); err != nil {
		t.Fatalf("heartbeat after the token was dropped: %v", err)
	}
	got, _ := e.Admin.Collector(ctx, c.ID)
	if got.LastHeartbeat.Version != "2" {
		t.Errorf("last heartbeat = %q", got.LastHeartbeat.Version)
	}
}
