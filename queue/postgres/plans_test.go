package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/postgres"
)

// The hot paths use their indexes, never a scan of the jobs' history: with
// a history of finished jobs and analyzed tables, no plan reads queue_jobs
// sequentially.
func TestQueryPlansUseIndexes(t *testing.T) {
	url := pgtest.NewDB(t)
	open(t, url, queue.DefaultConfig()) // migrates
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// 20,000 finished jobs over 2,000 integrations and 20 collectors, a
	// few active ones, and a peak record per integration.
	for _, s := range []string{
		`INSERT INTO queue_jobs (id, integration_id, collector_id, state, attempt, max_attempts, created_at, finished_at)
			SELECT 'job_' || g, 'int-' || (g % 2000), 'col-' || (g % 20), 'succeeded', 1, 3,
				now() - (g || ' s')::interval, now() - (g || ' s')::interval
			FROM generate_series(1, 20000) AS g`,
		`INSERT INTO queue_jobs (id, integration_id, collector_id, pool, state, attempt, max_attempts, created_at)
			SELECT 'job_q' || g, 'int-q' || g, CASE WHEN g % 2 = 0 THEN 'c' ELSE '' END, 'dc1', 'queued', 1, 3, now()
			FROM generate_series(1, 20) AS g`,
		`INSERT INTO queue_jobs (id, integration_id, collector_id, state, attempt, max_attempts, created_at, lease_id, lease_expires_at)
			SELECT 'job_l' || g, 'int-l' || g, 'c', 'running', 1, 3, now(), 'l', now() + interval '1 minute'
			FROM generate_series(1, 5) AS g`,
		`INSERT INTO queue_integration_peaks (integration_id, recent, peak_memory_bytes)
			SELECT 'int-' || g, ARRAY[g::bigint], g FROM generate_series(1, 2000) AS g`,
		`ANALYZE`,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	expireArgs := pgx.NamedArgs{"now": postgres.NextArgs()["now"]}
	cases := []struct {
		name, query string
		args        []any
		want        []string
	}{
		{"lease next", postgres.LeaseNextSQL, []any{postgres.NextArgs()}, []string{"queue_jobs_next", "queue_jobs_next_pool", "queue_jobs_active_collector"}},
		{"may have work", postgres.MayHaveWorkSQL, []any{postgres.NextArgs()}, []string{"queue_jobs_next", "queue_jobs_next_pool", "queue_jobs_active_collector"}},
		{"usage", postgres.UsageSQL, []any{postgres.NextArgs()}, []string{"queue_jobs_active_collector"}},
		{"expire", postgres.ExpireSQL, []any{expireArgs}, []string{"queue_jobs_lease"}},
	}
	for _, f := range []struct {
		name string
		f    queue.Filter
		idx  string
	}{
		{"all", queue.Filter{Before: "job_x", Limit: 50}, "queue_jobs_created"},
		{"by state", queue.Filter{States: []queue.State{queue.StateFailed}, Before: "job_x", Limit: 50}, "queue_jobs_state_created"},
		{"by integration", queue.Filter{IntegrationID: "int-1", Before: "job_x", Limit: 50}, "queue_jobs_integration"},
		{"by collector", queue.Filter{CollectorID: "col-1", Limit: 50}, "queue_jobs_collector"},
	} {
		q, args := postgres.ListSQL(f.f)
		cases = append(cases, struct {
			name, query string
			args        []any
			want        []string
		}{"list " + f.name, q, args, []string{f.idx}})
	}
	for _, c := range cases {
		rows, err := conn.Query(ctx, "EXPLAIN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: explain: %v", c.name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		for _, idx := range c.want {
			if !strings.Contains(plan, " "+idx+" ") {
				t.Errorf("%s: plan does not use %s:\n%s", c.name, idx, plan)
			}
		}
		if strings.Contains(plan, "Seq Scan on queue_jobs") {
			t.Errorf("%s: plan scans queue_jobs:\n%s", c.name, plan)
		}
		t.Logf("%s: %d plan lines", c.name, len(lines))
	}
}
