package sqlite

import (
	"context"
	"database/sql"
	"strings"
)

// QueryPlan is SQLite's EXPLAIN QUERY PLAN of query on db, its steps
// joined with "; ": which indexes a statement reads, and whether it sorts
// (the plan tests of this queue and of the platform's record store).
func QueryPlan(ctx context.Context, db *sql.DB, query string, args ...any) (string, error) {
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; "), rows.Err()
}
