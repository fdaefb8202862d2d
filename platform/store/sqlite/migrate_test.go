package sqlite_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/store/sqlite"
)

// Migration 13 moves the records into rowid tables: every row, deleted
// ones included, is there after it, found by key and by from/to, and the
// tables have their new shape.
func TestRecordsMovedToRowidTables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	db := raw(t, path)
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i, m := range sqlite.Migrations()[:12] {
		if _, err := db.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (?, 0)`, i+1); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO data_entities VALUES ('i1','u1','user','User','{"_key":"u1"}','j1',1000,NULL)`,
		`INSERT INTO data_entities VALUES ('i1','u2','user','User','{"_key":"u2"}','j1',1000,2000)`,
		`INSERT INTO data_entities VALUES ('i2','u1','user','User','{"_key":"u1","i":2}','j2',1000,NULL)`,
		`INSERT INTO data_relationships VALUES ('i1','u1|in|g1','user_in_group','IN','u1','g1','{}','j1',1000,NULL)`,
		`INSERT INTO data_relationships VALUES ('i1','u2|in|g1','user_in_group','IN','u2','g1','{}','j1',1000,2000)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := open(t, path)
	recs := s.Records()
	if it, err := recs.Item(ctx, api.KindEntity, "i2", "u1"); err != nil || string(it.Properties) != `{"_key":"u1","i":2}` || it.JobID != "j2" {
		t.Errorf("entity i2/u1 after the migration = %+v, %v", it, err)
	}
	if it, err := recs.Item(ctx, api.KindEntity, "i1", "u2"); err != nil || it.DeletedAt == nil || it.DeletedAt.UnixMilli() != 2000 {
		t.Errorf("deleted entity i1/u2 after the migration = %+v, %v", it, err)
	}
	p, err := recs.List(ctx, api.KindRelationship, jobs.ListFilter{IntegrationID: "i1", To: "g1", IncludeDeleted: true, Limit: 10})
	if err != nil || len(p.Items) != 2 || p.Items[0].Key != "u1|in|g1" || p.Items[1].From != "u2" {
		t.Errorf("relationships to g1 after the migration = %+v, %v", p.Items, err)
	}
	for _, table := range []string{"data_entities", "data_relationships"} {
		var ddl string
		if err := raw(t, path).QueryRow(`SELECT sql FROM sqlite_master WHERE name = ?`, table).Scan(&ddl); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ddl, "WITHOUT ROWID") || !strings.Contains(ddl, "id             INTEGER PRIMARY KEY") {
			t.Errorf("%s after the migration:\n%s", table, ddl)
		}
	}
}
