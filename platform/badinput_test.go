package platform_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestBadInput sends every endpoint malformed JSON, wrong types, unknown
// fields, trailing data, oversized and empty bodies, a wrong content type and
// missing or wrong credentials: each gets a clear 4xx JSON error and nothing
// is written.
func TestBadInput(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "victim")
	g, _ := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "pending"})
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "i", Image: "localhost/i:1",
		Config: json.RawMessage(`{"k":"v"}`), IntervalSec: 60, CollectorID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Heartbeat(ctx, api.Heartbeat{Version: "good"}); err != nil {
		t.Fatal(err)
	}
	access, _ := c.Client.AccessToken(ctx)
	admin := e.AdminToken

	type endpoint struct {
		method, path, token string
		wrongType           string
		body                bool
	}
	endpoints := []endpoint{
		{"POST", api.PathCollectors, admin, `{"name":5}`, true},
		{"GET", api.PathCollectors, admin, "", false},
		{"GET", api.PathCollectors + "/" + c.ID, admin, "", false},
		{"GET", api.PathCollectors + "/" + c.ID + "/heartbeats", admin, "", false},
		{"DELETE", api.PathCollectors + "/" + c.ID, admin, "", false},
		{"POST", api.PathCollectors + "/" + g.Collector.ID + "/token", admin, `{"ttl":"x"}`, true},
		{"POST", api.PathIntegrations, admin, `{"name":"x","image":"i","config":"notobject","interval_sec":"60"}`, true},
		{"GET", api.PathIntegrations, admin, "", false},
		{"GET", api.PathIntegrations + "/" + in.ID, admin, "", false},
		{"PATCH", api.PathIntegrations + "/" + in.ID, admin, `{"interval_sec":"often"}`, true},
		{"DELETE", api.PathIntegrations + "/" + in.ID, admin, "", false},
		{"POST", api.PathIntegrations + "/" + in.ID + "/assign", admin, `{"collector_id":7}`, true},
		{"GET", api.PathAudit, admin, "", false},
		{"GET", api.PathAuditVerify, admin, "", false},
		{"POST", api.PathEnroll, "", `{"collector_id":"` + g.Collector.ID + `","token":"` + g.EnrollmentToken + `","identity_public_key":"not base64!","hpke_public_key":1}`, true},
		{"POST", api.PathToken, "", `{"assertion":123}`, true},
		{"POST", api.PathHeartbeat, access, `{"running_jobs":"many"}`, true},
	}
	oversized := []byte(`{"name":"` + strings.Repeat("a", 2<<20) + `"}`)
	bodies := map[string][]byte{
		"malformed":     []byte(`{"name":`),
		"not json":      []byte(`name=x`),
		"array":         []byte(`[]`),
		"unknown field": []byte(`{"surprise":true}`),
		"trailing data": []byte(`{} {}`),
		"trailing junk": []byte(`{}x`),
		"empty":         nil,
		"oversized":     oversized,
	}
	snapshot := func() string {
		var b bytes.Buffer
		l, _ := e.Admin.Audit(ctx, 0, 1000)
		cs, _ := e.Admin.Collectors(ctx)
		is, _ := e.Admin.Integrations(ctx)
		for _, c := range cs {
			c.LastHeartbeatAt, c.Status = nil, "" // status moves with the clock
			if c.LastHeartbeat != nil {
				c.LastHeartbeat.At = nil
			}
		}
		json.NewEncoder(&b).Encode([]any{len(l.Entries), cs, is})
		return b.String()
	}
	before := snapshot()

	check := func(t *testing.T, ep endpoint, token, ctype string, body []byte, want ...int) {
		t.Helper()
		st, resp := e.Raw(t, ep.method, ep.path, token, ctype, body)
		ok := false
		for _, w := range want {
			ok = ok || st == w
		}
		var eb api.ErrorBody
		if !ok || json.Unmarshal(resp, &eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Errorf("%s %s: got %d %.200s, want %v with a JSON error", ep.method, ep.path, st, resp, want)
		}
	}
	for _, ep := range endpoints {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			if ep.token != "" {
				check(t, ep, "", "application/json", []byte(`{}`), 401)
				check(t, ep, "cadm_"+strings.Repeat("x", 43), "application/json", []byte(`{}`), 401)
				check(t, ep, "cacc_"+strings.Repeat("x", 43), "application/json", []byte(`{}`), 401)
			}
			if !ep.body {
				return
			}
			for name, body := range bodies {
				if body == nil && ep.method == "POST" && strings.HasSuffix(ep.path, "/token") && ep.token == admin {
					continue // this endpoint takes no body
				}
				want := []int{400}
				if name == "oversized" {
					want = []int{413, 400}
				}
				t.Run(name, func(t *testing.T) { check(t, ep, ep.token, "application/json", body, want...) })
			}
			check(t, ep, ep.token, "application/json", []byte(ep.wrongType), 400)
			check(t, ep, ep.token, "text/plain", []byte(`{}`), 415, 400)
		})
	}
	if after := snapshot(); after != before {
		t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
	}
	// Unknown routes and methods answer JSON too.
	check(t, endpoint{method: "GET", path: "/api/v1/nope"}, admin, "", nil, 404)
	check(t, endpoint{method: "GET", path: api.PathCollectors + "/col_bad"}, admin, "", nil, 404)
	check(t, endpoint{method: "PUT", path: api.PathCollectors}, admin, "application/json", []byte(`{}`), 405)
	check(t, endpoint{method: "GET", path: api.PathEnroll}, "", "", nil, 405)
}
