package platform_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/platformtest"
)

// fuzzEndpoint posts body to path through the server's handler and checks
// the answer is never a 5xx, and an error is always the JSON error shape.
func fuzzEndpoint(t *testing.T, h http.Handler, path, bearer string, body []byte) int {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var eb api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" {
			t.Fatalf("POST %s: %d with a body that is not a JSON error: %s", path, rec.Code, rec.Body)
		}
	}
	return rec.Code
}

func FuzzEnrollEndpoint(f *testing.F) {
	e := platformtest.Start(f)
	g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	key, hk := platformtest.NewKeys(f)
	good, _ := json.Marshal(api.EnrollRequest{CollectorID: g.Collector.ID, Token: g.EnrollmentToken + "x",
		IdentityPublicKey: key.Public().(ed25519.PublicKey), HPKEPublicKey: hk.PublicKey()})
	f.Add(good)
	f.Add([]byte(`{"collector_id":"` + g.Collector.ID + `","token":"cenr_x"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`nope`))
	h := e.Server.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		if code := fuzzEndpoint(t, h, api.PathEnroll, "", body); code == 200 {
			t.Fatalf("fuzzed body enrolled: %s", body)
		}
	})
}

func FuzzTokenEndpoint(f *testing.F) {
	e := platformtest.Start(f)
	c := e.EnrollNew(f, "fuzz")
	a, err := crypto.SignAssertion(c.Key, c.ID, e.Server.Audience(), time.Now())
	if err != nil {
		f.Fatal(err)
	}
	body := func(s string) []byte { b, _ := json.Marshal(api.TokenRequest{Assertion: s}); return b }
	f.Add(body(a))
	parts := strings.Split(a, ".")
	f.Add(body(parts[0] + "." + parts[1] + "."))
	f.Add(body(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."))
	f.Add(body(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." + parts[1] + "." + parts[2]))
	f.Add(body("a.b.c"))
	f.Add([]byte(`{"assertion":5}`))
	h := e.Server.Handler()
	f.Fuzz(func(t *testing.T, b []byte) {
		code := fuzzEndpoint(t, h, api.PathToken, "", b)
		if code == 200 && !bytes.Contains(b, []byte(parts[2][:20])) {
			t.Fatalf("an assertion without the collector's signature was accepted: %s", b)
		}
	})
}

func FuzzHeartbeatEndpoint(f *testing.F) {
	e := platformtest.Start(f)
	c := e.EnrollNew(f, "fuzz")
	tok, err := c.Client.AccessToken(ctx)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"version":"1","engine":{"kind":"podman","version":"4"},"capacity":{"cpus":1,"memory_total_bytes":1,"memory_free_bytes":1},"running_jobs":0,"runner_state":"ok"}`))
	f.Add([]byte(`{"running_jobs":"x"}`))
	h := e.Server.Handler()
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzEndpoint(t, h, api.PathHeartbeat, tok, b)
	})
}
