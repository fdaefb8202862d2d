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
		{"lease next", postgres.LeaseNextSQL.SQL(), postgres.LeaseNextSQL.Args(postgres.NextArgs()), []string{"queue_jobs_next", "queue_jobs_next_pool", "queue_jobs_active_collector"}},
		{"lease own", postgres.LeaseOwnSQL.SQL(), postgres.LeaseOwnSQL.Args(postgres.NextArgs()), []string{"queue_jobs_next", "queue_jobs_active_collector"}},
		{"may have work", postgres.MayHaveWorkSQL.SQL(), postgres.MayHaveWorkSQL.Args(postgres.NextArgs()), []string{"queue_jobs_next", "queue_jobs_next_pool", "queue_jobs_active_collector"}},
		{"usage", postgres.UsageSQL.SQL(), postgres.UsageSQL.Args(postgres.NextArgs()), []string{"queue_jobs_active_collector"}},
		{"expire", postgres.ExpireSQL.SQL(), postgres.ExpireSQL.Args(expireArgs), []string{"queue_jobs_lease"}},
	}
	final := []queue.State{queue.StateSucceeded, queue.StateFailed, queue.StateDead, queue.StateCanceled}
	for _, f := range []struct {
		name string
		f    queue.Filter
		idx  []string
	}{
		{"all", queue.Filter{Before: "job_x", Limit: 50}, []string{"queue_jobs_active_created", "queue_jobs_done_created"}},
		{"by state", queue.Filter{States: []queue.State{queue.StateFailed}, Before: "job_x", Limit: 50}, []string{"queue_jobs_done_state"}},
		{"by active state", queue.Filter{States: []queue.State{queue.StateQueued}, Limit: 50}, []string{"queue_jobs_active_created"}},
		{"by integration", queue.Filter{IntegrationID: "int-1", Before: "job_x", Limit: 50}, []string{"queue_jobs_done_integration"}},
		{"by collector", queue.Filter{CollectorID: "col-1", Limit: 50}, []string{"queue_jobs_done_collector"}},
		// The console's run charts.
		{"runs of an integration", queue.Filter{IntegrationID: "int-1", States: final, Limit: 30}, []string{"queue_jobs_done_integration"}},
	} {
		q, args := postgres.ListSQL(f.f)
		cases = append(cases, struct {
			name, query string
			args        []any
			want        []string
		}{"list " + f.name, q, args, f.idx})
	}
	delArgs := pgx.NamedArgs{"integration": "int-1", "limit": 100, "cutoff": postgres.NextArgs()["now"]}
	cases = append(cases, []struct {
		name, query string
		args        []any
		want        []string
	}{
		{"delete an integration's jobs", postgres.DeleteIntegrationJobsSQL.SQL(), postgres.DeleteIntegrationJobsSQL.Args(delArgs), []string{"queue_jobs_done_integration"}},
		{"delete finished jobs", postgres.DeleteFinishedSQL.SQL(), postgres.DeleteFinishedSQL.Args(delArgs), []string{"queue_jobs_done_created"}},
	}...)
	// A reassignment reads the integration's active jobs; a deleted
	// collector's jobs are its queued and its active ones: never a history.
	goneArgs := pgx.NamedArgs{"integration": "int-l1", "collector": "c", "pool": "", "now": postgres.NextArgs()["now"], "reason": "r"}
	for _, c := range []struct {
		name string
		s    postgres.Stmt
		want []string
	}{
		{"reassign", postgres.ReassignSQL, []string{"queue_jobs_active_integration"}},
		{"cancel a collector's queued jobs", postgres.CancelCollectorSQL, []string{"queue_jobs_next"}},
		{"move a deleted collector's jobs", postgres.LeaveCollectorSQL, []string{"queue_jobs_active_collector"}},
		{"cancel a deleted collector's jobs", postgres.CancelCollectorInFlightSQL, []string{"queue_jobs_active_collector"}},
	} {
		cases = append(cases, struct {
			name, query string
			args        []any
			want        []string
		}{c.name, c.s.SQL(), c.s.Args(goneArgs), c.want})
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
	// The calls that carry a lease find their job by its ID, in the
	// generic plan too (the one a prepared statement settles on): not by
	// scanning every unexpired lease (queue_jobs_lease) for it.
	for _, c := range []struct {
		name string
		s    postgres.Stmt
	}{
		{"renew", postgres.RenewSQL},
		{"mark running", postgres.MarkRunningSQL},
		{"finish", postgres.FinishSQL},
		{"requeue", postgres.RequeueSQL},
		{"cancel", postgres.CancelSQL},
	} {
		plan := genericPlan(t, conn, c.s)
		if !strings.Contains(plan, " queue_jobs_id_key ") || strings.Contains(plan, " queue_jobs_lease ") {
			t.Errorf("%s: generic plan does not find the job by queue_jobs_id_key alone:\n%s", c.name, plan)
		}
	}
}

// genericPlan is the plan PostgreSQL keeps for s once a prepared statement
// stops being planned for its arguments (after five executions, if the
// generic plan looks no worse): whatever the arguments.
func genericPlan(t *testing.T, conn *pgx.Conn, s postgres.Stmt) string {
	t.Helper()
	ctx := context.Background()
	simple := pgx.QueryExecModeSimpleProtocol
	nulls := strings.TrimSuffix(strings.Repeat("NULL, ", len(s.Names())), ", ")
	for _, q := range []string{`SET plan_cache_mode = force_generic_plan`, `PREPARE generic AS ` + s.SQL()} {
		if _, err := conn.Exec(ctx, q, simple); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	defer conn.Exec(ctx, `DEALLOCATE generic; RESET plan_cache_mode`, simple)
	rows, err := conn.Query(ctx, `EXPLAIN EXECUTE generic(`+nulls+`)`, simple)
	if err != nil {
		t.Fatalf("explain the generic plan: %v", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
