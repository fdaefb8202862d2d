package postgres_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/queue/postgres"
)

// positional numbers the names by first appearance, reuses a name's
// number, and leaves quoted text, comments, casts and a lone @ alone; Args
// orders the values, a missing one NULL.
func TestPositional(t *testing.T) {
	s := postgres.Positional(`SELECT @b::text, '@a''s @b', "@b", @a_1::int -- @c
		, @b::text, @a_1, @ 1, @missing`)
	wantSQL := `SELECT $1::text, '@a''s @b', "@b", $2::int -- @c
		, $1::text, $2, @ 1, $3`
	if s.SQL() != wantSQL {
		t.Errorf("SQL:\ngot  %s\nwant %s", s.SQL(), wantSQL)
	}
	if got, want := s.Names(), []string{"b", "a_1", "missing"}; !slices.Equal(got, want) {
		t.Errorf("names = %q, want %q", got, want)
	}
	if got, want := s.Args(pgx.NamedArgs{"a_1": 1, "b": "x", "c": 3}), []any{"x", 1, nil}; !slices.Equal(got, want) {
		t.Errorf("args = %v, want %v", got, want)
	}
}
