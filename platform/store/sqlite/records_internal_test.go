package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/queue"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

// TestListPlans: each shape of List's query reads an index made for it —
// a page of one entity's relationships its from or to index (not every
// relationship of the integration in key order), a page of the
// integration its key index in order (no sort) — and the finish's sweep
// and MarkDangling read indexes too.
func TestListPlans(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "platform.db"), Options{IntegrityKey: make([]byte, 32), Queue: queue.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cases := []struct {
		name   string
		kind   string
		f      jobs.ListFilter
		want   string
		sorted bool // the plan sorts what the index found
	}{
		{"entities", api.KindEntity, jobs.ListFilter{IntegrationID: "i", Limit: 10}, "INDEX data_entities_key (integration_id=? AND key>?)", false},
		{"entities of a type", api.KindEntity, jobs.ListFilter{IntegrationID: "i", Type: "user", Limit: 10}, "INDEX data_entities_key (integration_id=? AND key>?)", false},
		{"relationships", api.KindRelationship, jobs.ListFilter{IntegrationID: "i", KeyPrefix: "a", Limit: 10}, "INDEX data_relationships_key (integration_id=? AND key>? AND key<?)", false},
		{"from", api.KindRelationship, jobs.ListFilter{IntegrationID: "i", From: "u1", Limit: 10}, "INDEX data_relationships_from (integration_id=? AND from_key=?)", true},
		{"to", api.KindRelationship, jobs.ListFilter{IntegrationID: "i", To: "g1", Limit: 10, IncludeDeleted: true}, "INDEX data_relationships_to (integration_id=? AND to_key=?)", true},
		{"from and to", api.KindRelationship, jobs.ListFilter{IntegrationID: "i", From: "u1", To: "g1", Limit: 10}, "INDEX data_relationships_from (integration_id=? AND from_key=?)", true},
	}
	for _, c := range cases {
		q, args := listQuery(c.kind, c.f, "")
		plan := explain(t, s, q, args...)
		if !strings.Contains(plan, c.want) || strings.Contains(plan, "TEMP B-TREE") != c.sorted {
			t.Errorf("%s: plan %q; want %s (sorted: %v)", c.name, plan, c.want, c.sorted)
		}
	}
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"dangling": {danglingSQL, []any{"i"}},
		"sweep":    {sweepSQL("data_relationships"), []any{1, "i", "j"}},
	} {
		if plan := explain(t, s, q.sql, q.args...); !strings.Contains(plan, "USING INDEX") || strings.Contains(plan, "SCAN") {
			t.Errorf("%s: plan %q; want it to search indexes", name, plan)
		}
	}
}

func explain(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	plan, err := qsqlite.QueryPlan(context.Background(), s.r, q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	return plan
}
