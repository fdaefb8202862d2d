package pgtest_test

import (
	"strings"
	"testing"

	"github.com/collectorhq/collector/internal/pgtest"
)

// TestUsageOf: statements run in a database are counted with their time
// and WAL; those of another database are not.
func TestUsageOf(t *testing.T) {
	url := pgtest.NewDB(t)
	other := pgtest.NewDB(t)
	before, err := pgtest.UsageOf(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgtest.UsageOf(other); err != nil {
		t.Fatal(err)
	}
	s := pgtest.Shared(t)
	dbName := func(u string) string { return u[strings.LastIndex(u, "/")+1 : strings.Index(u, "?")] }
	db := dbName(url)
	for _, q := range []string{"CREATE TABLE t (v text)", "INSERT INTO t SELECT repeat('x', 100) FROM generate_series(1, 1000)"} {
		if _, err := s.Exec(db, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Exec(dbName(other), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	after, err := pgtest.UsageOf(url)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	// The two statements, and the reads' own (each read's query is
	// counted when it ends, after its own snapshot).
	if d.Statements < 2 || d.Statements > 6 || d.ExecMs <= 0 || d.WALBytes < 100_000 {
		t.Errorf("usage of 1000 rows of 100 bytes: %+v", d)
	}
}
