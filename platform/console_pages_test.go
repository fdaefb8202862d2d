package platform_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/platformtest"
)

// pageAs is a browser signed in with role's API token (pages take the
// same credentials as the API).
func pageAs(t *testing.T, e *platformtest.Env, token string) *browser {
	b := newBrowser(t, e)
	b.hdr["Authorization"] = "Bearer " + token
	return b
}

// get and post are page with the browser's headers.
func (b *browser) get(path string) (int, string, string) {
	b.t.Helper()
	return b.send(http.MethodGet, path, nil)
}

func (b *browser) post(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	return b.send(http.MethodPost, path, form)
}

func (b *browser) send(method, path string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, b.e.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		sb.WriteString(sc.Text() + "\n")
	}
	return resp.StatusCode, resp.Request.URL.RequestURI(), sb.String()
}

func mustContain(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s does not contain %q", what, s)
		}
	}
}

var hrefIntegration = regexp.MustCompile(`/integrations/(int_[a-z2-7]{26})`)

// The console's data pages, as an administrator and a viewer would use
// them without JavaScript: each act goes through the API's acts, each
// refusal says why, and no page shows a secret.
func TestConsoleDataPages(t *testing.T) {
	e := platformtest.Start(t)
	admin := pageAs(t, e, e.AdminToken)
	const secret = "s3cret-console-value"

	// A new collector: the token and the install commands, once, not stored.
	st, _, body := admin.post("/collectors/new", url.Values{"name": {"site-a"}, "pool": {""}})
	if st != http.StatusCreated {
		t.Fatalf("new collector: %d\n%s", st, body)
	}
	mustContain(t, "the install page", body, "Install site-a", "enrollment-token", "podman run", "docker run", "collector-daemon")
	if m := regexp.MustCompile(regexp.QuoteMeta(api.EnrollmentTokenPrefix) + `[A-Za-z0-9_-]{20,}`).FindString(body); m == "" {
		t.Error("the install page shows no enrollment token")
	}
	// Bad input: the API's message next to the field.
	st, _, body = admin.post("/collectors/new", url.Values{"name": {""}})
	if st != http.StatusBadRequest || !strings.Contains(body, `id="name-error"`) {
		t.Errorf("new collector without a name: %d, want 400 with the error at the field", st)
	}
	cols, err := e.Admin.Collectors(ctx)
	if err != nil || len(cols) != 1 {
		t.Fatalf("collectors = %v, %v", cols, err)
	}
	colA := cols[0].ID
	b := e.EnrollNew(t, "site-b")
	if err := b.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}

	for path, want := range map[string][]string{
		"/":                          {"Overview", "1 pending", "1 active"},
		"/collectors":                {"site-a", "site-b", `data-live="/collectors/events"`},
		"/collectors?status=pending": {"site-a"},
		"/collectors/" + colA:        {"site-a", "<svg", "Free memory"},
	} {
		st, _, body := admin.get(path)
		if st != 200 {
			t.Errorf("GET %s = %d", path, st)
		}
		mustContain(t, path, body, want...)
	}
	if _, _, body := admin.get("/collectors?status=pending"); strings.Contains(body, "site-b") {
		t.Error("the pending filter shows an active collector")
	}

	// A new integration with a secret, assigned to A.
	form := url.Values{"form": {"json"}, "name": {"ldap"}, "image": {"registry.example/ldap:1"}, "interval_sec": {"3600"},
		"network": {""}, "collector_id": {colA}, "config": {`{"url": "ldaps://dc"}`},
		"secret_name": {"password", ""}, "secret_value": {secret, ""}, "action": {"save"}}
	st, where, body := admin.post("/integrations/new", form)
	if st != 200 || !strings.Contains(where, "?done=saved") {
		t.Fatalf("new integration: %d at %s\n%s", st, where, body)
	}
	intID := hrefIntegration.FindStringSubmatch(where)[1]
	in, err := e.Store.Integration(ctx, intID)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := crypto.OpenAtRest(e.DataKey, in.SealedConfig, platform.ConfigAAD(in))
	if err != nil || !strings.Contains(string(cfg), secret) || in.CollectorID != colA {
		t.Fatalf("stored integration: %s, %v, collector %s", cfg, err, in.CollectorID)
	}

	// A form error keeps what was typed but never the secret.
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("name", "ldap-2")
	bad.Set("interval_sec", "5")
	st, _, body = admin.post("/integrations/new", bad)
	if st != 400 || !strings.Contains(body, "interval_sec must be between") || !strings.Contains(body, `value="ldap-2"`) {
		t.Errorf("a bad interval: %d\n%s", st, body)
	}
	if strings.Contains(body, secret) {
		t.Error("the form sent the secret back after an error")
	}

	// Edit without retyping the secret keeps it.
	edit := url.Values{"form": {"json"}, "name": {"ldap"}, "image": {"registry.example/ldap:2"}, "interval_sec": {"7200"}, "network": {""},
		"config": {`{"url": "ldaps://dc2"}`}, "secret_name": {"password", ""}, "secret_value": {"", ""}, "action": {"save"}}
	if st, where, body := admin.post("/integrations/"+intID+"/edit", edit); st != 200 || !strings.Contains(where, "done=saved") {
		t.Fatalf("edit: %d at %s\n%s", st, where, body)
	}
	in, _ = e.Store.Integration(ctx, intID)
	cfg, _ = crypto.OpenAtRest(e.DataKey, in.SealedConfig, platform.ConfigAAD(in))
	if !strings.Contains(string(cfg), secret) || !strings.Contains(string(cfg), "dc2") || in.Image != "registry.example/ldap:2" {
		t.Errorf("after an edit that left the secret empty: %s, image %s", cfg, in.Image)
	}

	// Run it, lease it as A, send records and logs: the job page, the
	// live stream, the data pages.
	a := enrollAs(t, e, colA)
	st, where, _ = admin.post("/integrations/"+intID+"/run", url.Values{})
	if st != 200 || !strings.HasPrefix(where, "/jobs/job_") {
		t.Fatalf("run now: %d at %s", st, where)
	}
	jobID := strings.TrimPrefix(where, "/jobs/")
	l := leaseJob(t, a)
	if err := a.Client.MarkRunning(ctx, l.JobID, l.LeaseID); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.UploadLogs(ctx, l.JobID, l.LeaseID, 1, []byte("first line\n")); err != nil {
		t.Fatal(err)
	}
	_, _, body = admin.get("/jobs/" + jobID)
	mustContain(t, "the running job's page", body, "first line", `data-events="/jobs/`+jobID+`/events?after=`, "running", `href="/jobs/`+jobID+`/cancel"`)
	// Destructive acts are confirmed on a page of their own first.
	_, _, body = admin.get("/jobs/" + jobID + "/cancel")
	mustContain(t, "the cancel confirmation", body, `action="/jobs/`+jobID+`/cancel"`, "Cancel the job")
	if j, _ := e.Admin.Job(ctx, jobID); j.State != "running" {
		t.Errorf("the confirmation page changed the job: %s", j.State)
	}
	events := streamEvents(t, admin, "/jobs/"+jobID+"/events?after=0")
	if _, err := a.Client.UploadRecords(ctx, l.JobID, l.LeaseID, 1, ndjson(entityLine("u1", "ldap_user"), entityLine("g1", "ldap_group"), relLine("r1", "u1", "g1"))); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.UploadLogs(ctx, l.JobID, l.LeaseID, 2, []byte("second line\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, Batches: 1, Records: 3}); err != nil {
		t.Fatal(err)
	}
	var logText string
	var last map[string]any
	for ev := range events {
		if ev["log"] != nil {
			logText += ev["log"].(string)
		}
		last = ev
	}
	if logText != "first line\nsecond line\n" || last == nil || last["finished"] != true || last["state"] != "succeeded" {
		t.Errorf("job stream: logs %q, last event %v; want both lines once and a finished event", logText, last)
	}

	for path, want := range map[string][]string{
		"/jobs":                                             {jobID, "succeeded", "ldap"},
		"/jobs?state=succeeded":                             {jobID},
		"/jobs?integration=" + intID:                        {jobID},
		"/integrations":                                     {"ldap", "site-a", "succeeded"},
		"/integrations/" + intID:                            {"password: set", "<svg", "Run now", "ldaps://dc2", "(secret: set)"},
		"/data?integration=" + intID:                        {"u1", "g1", "ldap_user"},
		"/data?integration=" + intID + "&q=u":               {"u1"},
		"/data?integration=" + intID + "&kind=relationship": {"r1", "u1", "g1"},
		"/data/" + intID + "/entity?key=u1":                 {"ldap_user", "user_has_group", "g1"},
		"/data/" + intID + "/entity?key=g1":                 {`<ul id="rel-to"><li><a href="/data/` + intID + `/entity?key=u1">u1</a> → user_has_group`},
		"/audit":                                            {"integration.created", "collector.created", "Verify the whole chain now"},
		"/audit?action=integration.updated":                 {"integration.updated"},
		"/audit?verify=1":                                   {"The chain verifies"},
		"/users":                                            {"test-admin", "New user"},
	} {
		st, _, body := admin.get(path)
		if st != 200 {
			t.Errorf("GET %s = %d", path, st)
		}
		mustContain(t, path, body, want...)
		if strings.Contains(body, secret) {
			t.Errorf("GET %s shows the secret", path)
		}
	}
	if _, _, body := admin.get("/data?integration=" + intID + "&q=g"); strings.Contains(body, ">u1<") {
		t.Error("the key-prefix search g shows u1")
	}
	if _, _, body := admin.get("/audit?action=collector.created"); strings.Contains(body, "integration.created") {
		t.Error("the audit action filter shows other actions")
	}

	// Deleting A while it has the integration: refused, the integration
	// named with a link to reassign it; after moving it to B: allowed.
	st, _, body = admin.get("/collectors/" + colA + "/delete")
	mustContain(t, "the delete page", body, "still has integrations", "/integrations/"+intID+"#assign")
	st, _, body = admin.post("/collectors/"+colA+"/delete", url.Values{})
	if st != http.StatusConflict || !strings.Contains(body, "ldap") {
		t.Errorf("delete with an integration: %d", st)
	}
	if st, where, _ := admin.post("/integrations/"+intID+"/assign", url.Values{"collector_id": {b.ID}}); st != 200 || !strings.Contains(where, "done=assigned") {
		t.Fatalf("assign to B: %d at %s", st, where)
	}
	in, _ = e.Store.Integration(ctx, intID)
	cfg, err = crypto.OpenAtRest(e.DataKey, in.SealedConfig, platform.ConfigAAD(in))
	if in.CollectorID != b.ID || err != nil || !strings.Contains(string(cfg), secret) {
		t.Errorf("after the move: collector %s, config %s, %v; want B with the secret kept", in.CollectorID, cfg, err)
	}
	if st, where, _ := admin.post("/collectors/"+colA+"/delete", url.Values{}); st != 200 || !strings.HasPrefix(where, "/collectors") {
		t.Errorf("delete after the move: %d at %s", st, where)
	}
	if _, err := e.Store.Collector(ctx, colA); err == nil {
		t.Error("collector A still exists")
	}
}

// enrollAs enrolls a collector created elsewhere (its token is on the
// install page): here, with a new token from the API.
func enrollAs(t *testing.T, e *platformtest.Env, id string) *platformtest.Collector {
	t.Helper()
	g, err := e.Admin.NewEnrollmentToken(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return e.Enroll(t, g)
}

// streamEvents follows an SSE stream and delivers its events' data until
// it ends (or 10 s pass).
func streamEvents(t *testing.T, b *browser, path string) <-chan map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.e.URL+path, nil)
	for k, v := range b.hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan map[string]any, 100)
	go func() {
		defer cancel()
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				if json.Unmarshal([]byte(data), &m) == nil {
					out <- m
				}
			}
		}
	}()
	return out
}

// A viewer reads every page but sees no control that changes anything,
// and a form it posts anyway is refused; a request from another site is
// refused before any handler.
func TestConsoleViewerAndCrossOrigin(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "site")
	in := newJobIntegration(t, e, "ldap", c.ID)
	viewer := pageAs(t, e, tokenOf(t, e, "viewer", createUser(t, e, "viewer", access.RoleViewer)))
	for _, path := range []string{"/", "/collectors", "/collectors/" + c.ID, "/integrations", "/integrations/" + in.ID, "/jobs", "/data", "/audit"} {
		st, _, body := viewer.get(path)
		if st != 200 {
			t.Errorf("viewer GET %s = %d", path, st)
		}
		for _, control := range []string{"New collector", "New integration", "Run now", "Test credentials", "Delete…", "/edit", "New enrollment token", `action="/integrations/` + in.ID + `/assign"`} {
			if strings.Contains(body, control) {
				t.Errorf("viewer GET %s shows %q", path, control)
			}
		}
	}
	for path, form := range map[string]url.Values{
		"/collectors/new":                      {"name": {"x"}},
		"/integrations/" + in.ID + "/run":      {},
		"/integrations/" + in.ID + "/validate": {},
		"/integrations/" + in.ID + "/assign":   {"collector_id": {""}},
		"/collectors/" + c.ID + "/delete":      {},
		"/users":                               {"login": {"x"}},
	} {
		if st, _, _ := viewer.post(path, form); st != http.StatusForbidden {
			t.Errorf("viewer POST %s = %d, want 403", path, st)
		}
	}
	if st, _, _ := viewer.get("/users"); st != http.StatusForbidden {
		t.Errorf("viewer GET /users = %d, want 403", st)
	}
	admin := pageAs(t, e, e.AdminToken)
	admin.hdr["Origin"] = "https://evil.example"
	admin.hdr["Sec-Fetch-Site"] = "cross-site"
	if st, _, _ := admin.post("/integrations/"+in.ID+"/run", url.Values{}); st != http.StatusForbidden {
		t.Errorf("a cross-site POST = %d, want 403", st)
	}
	if l, _ := e.Admin.Jobs(ctx, api.JobFilter{IntegrationID: in.ID}); len(l) != 0 {
		t.Errorf("the cross-site POST ran the integration: %v", l)
	}
}

// The collectors page's live stream reports a status change without a
// reload.
func TestConsoleCollectorsStream(t *testing.T) {
	e := platformtest.Start(t)
	g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	admin := pageAs(t, e, e.AdminToken)
	events := streamEvents(t, admin, "/collectors/events?ids="+g.Collector.ID)
	first := <-events
	if first["id"] != g.Collector.ID || first["status"] != "pending" {
		t.Fatalf("first event = %v, want pending", first)
	}
	c := e.Enroll(t, g)
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if ev["status"] == "active" {
			return
		}
	}
	t.Error("the stream never reported the collector active")
}

// Strings a user or a collector sent are text on a page, never markup;
// a collector whose engine is down shows degraded, with why.
func TestConsoleEscapesAndShowsDegraded(t *testing.T) {
	e := platformtest.Start(t)
	const name = `<img src=x onerror=alert(1)>`
	g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Enroll(t, g)
	if err := c.Client.Heartbeat(ctx, api.Heartbeat{Version: `1.0"><script>x()</script>`, RunnerState: "unknown",
		EngineError: `dial unix /run/podman/podman.sock: connect: connection refused <b>`}); err != nil {
		t.Fatal(err)
	}
	admin := pageAs(t, e, e.AdminToken)
	for _, path := range []string{"/collectors", "/collectors/" + c.ID, "/collectors?status=degraded", "/audit"} {
		_, _, body := admin.get(path)
		for _, raw := range []string{"<img src=x", "<script>x()", "refused <b>"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s carries %q as markup", path, raw)
			}
		}
		if path != "/audit" {
			mustContain(t, path, body, "&lt;img src=x onerror=alert(1)&gt;", `class="status degraded"`)
		}
	}
	_, _, body := admin.get("/collectors/" + c.ID)
	mustContain(t, "the degraded collector's page", body, "container engine unreachable", "connection refused &lt;b&gt;")
}
