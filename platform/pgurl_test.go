package platform_test

import (
	"testing"

	"github.com/collectorhq/collector/internal/pgtest"
)

// postgresURL starts a PostgreSQL server of t's own (stopped when t ends;
// the platform's tests do not share one: most run on SQLite) and returns
// the URL of a fresh database on it.
func postgresURL(t testing.TB) string {
	t.Helper()
	pgtest.Need(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	db, err := pg.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	return pg.URL(db)
}
