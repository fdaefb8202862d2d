package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/platformtest"
)

// getJSON calls the admin API with the admin token and decodes a 200.
func getJSON(t *testing.T, e *platformtest.Env, path string, out any) {
	t.Helper()
	status, body := e.Raw(t, http.MethodGet, path, e.AdminToken, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// Lists page by cursor, filter, and refuse what they cannot read; the
// client's Collectors and Integrations follow the pages to the end.
func TestListsPageByCursor(t *testing.T) {
	e := platformtest.Start(t)
	ctx := context.Background()
	want := map[string]bool{}
	for i := range 7 {
		pool := "east"
		if i%2 == 1 {
			pool = "west"
		}
		g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: fmt.Sprintf("site-%02d", i), Pool: pool})
		if err != nil {
			t.Fatal(err)
		}
		want[g.Collector.ID] = true
		if _, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: fmt.Sprintf("int-%02d", i), Image: "registry.example/x:1",
			IntervalSec: 3600, CollectorID: g.Collector.ID, Config: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}

	// Walk the collectors two at a time: each once, in name order.
	var seen []string
	for after, pages := "", 0; ; pages++ {
		var l api.CollectorList
		getJSON(t, e, "/api/v1/collectors?limit=2&after="+url.QueryEscape(after), &l)
		for _, c := range l.Collectors {
			seen = append(seen, c.Name)
		}
		if l.Next == "" {
			if pages != 3 {
				t.Errorf("7 collectors by 2 took %d pages after the first, want 3", pages)
			}
			break
		}
		after = l.Next
	}
	if got := strings.Join(seen, ","); got != "site-00,site-01,site-02,site-03,site-04,site-05,site-06" {
		t.Errorf("collectors by page = %s", got)
	}
	all, err := e.Admin.Collectors(ctx)
	if err != nil || len(all) != 7 {
		t.Fatalf("Collectors() = %d, %v; want 7", len(all), err)
	}

	for _, c := range []struct {
		query string
		want  int
	}{
		{"pool=west", 3}, {"pool=east&status=pending", 4}, {"status=active", 0}, {"q=site-0", 7}, {"q=" + all[2].ID, 1}, {"q=%25", 0},
	} {
		var l api.CollectorList
		getJSON(t, e, "/api/v1/collectors?"+c.query, &l)
		if len(l.Collectors) != c.want {
			t.Errorf("collectors?%s = %d, want %d", c.query, len(l.Collectors), c.want)
		}
	}

	var il api.IntegrationList
	getJSON(t, e, "/api/v1/integrations?limit=3", &il)
	if len(il.Integrations) != 3 || il.Next == "" {
		t.Errorf("integrations?limit=3 = %d, next %q", len(il.Integrations), il.Next)
	}
	getJSON(t, e, "/api/v1/integrations?collector="+all[0].ID, &il)
	if len(il.Integrations) != 1 || il.Integrations[0].CollectorID != all[0].ID {
		t.Errorf("integrations?collector= = %+v", il.Integrations)
	}
	ins, err := e.Admin.Integrations(ctx)
	if err != nil || len(ins) != 7 {
		t.Fatalf("Integrations() = %d, %v; want 7", len(ins), err)
	}

	// Jobs: newest first, by ?before=.
	var jobIDs []string
	for _, in := range ins {
		j, err := e.Admin.RunIntegration(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		jobIDs = append(jobIDs, j.ID)
	}
	var got []string
	for before := ""; ; {
		var l api.JobList
		getJSON(t, e, "/api/v1/jobs?limit=3&before="+before, &l)
		for _, j := range l.Jobs {
			got = append(got, j.ID)
		}
		if l.Next == "" || len(got) > len(jobIDs) {
			break
		}
		before = l.Next
	}
	if len(got) != len(jobIDs) {
		t.Fatalf("jobs by page = %d, want %d", len(got), len(jobIDs))
	}
	for i, id := range got {
		if id != jobIDs[len(jobIDs)-1-i] {
			t.Errorf("jobs page order [%d] = %s, want %s", i, id, jobIDs[len(jobIDs)-1-i])
		}
	}

	// Wrong filters and cursors: 400 with what is wrong.
	for _, path := range []string{
		"/api/v1/collectors?status=asleep", "/api/v1/collectors?after=%21%21", "/api/v1/collectors?limit=0",
		"/api/v1/collectors?q=" + strings.Repeat("x", 300), "/api/v1/integrations?collector=nope",
		"/api/v1/jobs?before=nope", "/api/v1/jobs?state=asleep", "/api/v1/integrations?after=" + url.QueryEscape("a\x00b"),
	} {
		status, body := e.Raw(t, http.MethodGet, path, e.AdminToken, "", nil)
		if status != http.StatusBadRequest || !strings.Contains(string(body), api.CodeInvalidRequest) {
			t.Errorf("GET %s = %d %s, want 400 invalid_request", path, status, body)
		}
	}
}
