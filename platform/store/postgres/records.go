package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
	qpg "github.com/collectorhq/collector/queue/postgres"
)

// Records is the PostgreSQL record store (jobs.Records), in the store's
// database: its lease checks and the finish's sweep run in the queue's
// transactions.
//
// The data tables keep updated_at and deleted_at in Unix milliseconds, as
// SQLite's record store does (unlike the other tables' nanoseconds).
//
// Several replicas may write at once where SQLite had one writer; each
// read-then-write below says what makes it safe.
type Records struct {
	s *Store
}

var _ jobs.Records = (*Records)(nil)

// Applied implements jobs.Records.
func (r *Records) Applied(ctx context.Context, k jobs.BatchKey) (jobs.BatchCounts, bool, error) {
	var c jobs.BatchCounts
	err := r.s.pool.QueryRow(ctx, `SELECT accepted, refused FROM data_batches WHERE job_id = $1 AND lease_id = $2 AND seq = $3`,
		k.JobID, k.LeaseID, k.Seq).Scan(&c.Accepted, &c.Refused)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return jobs.BatchCounts{}, false, fmt.Errorf("look up batch %d of job %s: %w", k.Seq, k.JobID, err)
	}
	return c, true, nil
}

// Ingest implements jobs.Records. The batch's key is claimed first, with
// an INSERT that waits for a concurrent claim of the same key to commit
// or roll back: of two replicas ingesting one batch at once, exactly one
// applies it and the other answers dup (SQLite's single writer gave that
// for free). Each table then takes one statement for the whole batch.
func (r *Records) Ingest(ctx context.Context, b *jobs.Batch) (bool, error) {
	k := b.Key
	dup := false
	err := r.s.qtx(ctx, func(qt *qpg.Tx) error {
		if _, err := qt.CheckLease(ctx, k.JobID, k.LeaseID); err != nil {
			return err
		}
		tx := qt.SQL()
		tag, err := tx.Exec(ctx, `INSERT INTO data_batches(job_id, lease_id, seq, accepted, refused) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, k.JobID, k.LeaseID, k.Seq, len(b.Records), b.Refused)
		if err != nil {
			return fmt.Errorf("claim batch %d of job %s: %w", k.Seq, k.JobID, err)
		}
		if dup = tag.RowsAffected() == 0; dup {
			return nil
		}
		if err := upsert(ctx, tx, k, qt.Now(), b.Records); err != nil {
			return err
		}
		// Counted for this attempt: a batch of a new lease starts over.
		_, err = tx.Exec(ctx, `INSERT INTO data_job_stats(job_id, lease_id, records, refused) VALUES ($1, $2, $3, $4)
			ON CONFLICT (job_id) DO UPDATE SET
				records = CASE WHEN data_job_stats.lease_id IN (excluded.lease_id, '')
					THEN data_job_stats.records + excluded.records ELSE excluded.records END,
				refused = CASE WHEN data_job_stats.lease_id IN (excluded.lease_id, '')
					THEN data_job_stats.refused + excluded.refused ELSE excluded.refused END,
				lease_id = excluded.lease_id`,
			k.JobID, k.LeaseID, len(b.Records), b.Refused)
		if err != nil {
			return fmt.Errorf("count batch %d of job %s: %w", k.Seq, k.JobID, err)
		}
		return nil
	})
	return dup, err
}

// upsertEntitySQL and upsertRelationshipSQL upsert a whole batch from
// arrays: what SQLite's row-by-row upsert sets, a conflict sets too (the
// row is live again, last sent by this job). The rows are inserted, and
// their locks taken, in the arrays' order.
const (
	upsertEntitySQL = `INSERT INTO data_entities(integration_id, key, type, class, properties, last_job_id, updated_at, deleted_at)
		SELECT $1, u.key, u.type, u.class, u.properties, $2, $3, NULL
		FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS u(key, type, class, properties)
		ON CONFLICT (integration_id, key) DO UPDATE SET type = excluded.type, class = excluded.class,
			properties = excluded.properties, last_job_id = excluded.last_job_id, updated_at = excluded.updated_at,
			deleted_at = NULL`
	upsertRelationshipSQL = `INSERT INTO data_relationships(integration_id, key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at)
		SELECT $1, u.key, u.type, u.class, u.from_key, u.to_key, u.properties, $2, $3, NULL
		FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) AS u(key, type, class, from_key, to_key, properties)
		ON CONFLICT (integration_id, key) DO UPDATE SET type = excluded.type, class = excluded.class,
			from_key = excluded.from_key, to_key = excluded.to_key, properties = excluded.properties,
			last_job_id = excluded.last_job_id, updated_at = excluded.updated_at, deleted_at = NULL`
)

// upsert writes a batch's entities, then its relationships, one statement
// each.
func upsert(ctx context.Context, tx pgx.Tx, k jobs.BatchKey, now time.Time, recs []*integration.Record) error {
	var ents, rels []*integration.Record
	for _, rec := range recs {
		if rec.Kind == integration.KindEntity {
			ents = append(ents, rec)
		} else {
			rels = append(rels, rec)
		}
	}
	ms := now.UnixMilli()
	if ents = lastPerKey(ents); len(ents) > 0 {
		c := columnsOf(ents, false)
		if _, err := tx.Exec(ctx, upsertEntitySQL, k.IntegrationID, k.JobID, ms, c.keys, c.types, c.classes, c.props); err != nil {
			return fmt.Errorf("upsert %d entities of batch %d of job %s: %w", len(ents), k.Seq, k.JobID, err)
		}
	}
	if rels = lastPerKey(rels); len(rels) > 0 {
		c := columnsOf(rels, true)
		if _, err := tx.Exec(ctx, upsertRelationshipSQL, k.IntegrationID, k.JobID, ms, c.keys, c.types, c.classes, c.from, c.to, c.props); err != nil {
			return fmt.Errorf("upsert %d relationships of batch %d of job %s: %w", len(rels), k.Seq, k.JobID, err)
		}
	}
	return nil
}

// lastPerKey returns recs sorted by key, each key once with its last
// record: the one SQLite's row-by-row upsert leaves (one INSERT ... ON
// CONFLICT cannot update a row twice). The order also makes concurrent
// batches that share keys lock their rows in the same order, so they
// wait for each other instead of deadlocking.
func lastPerKey(recs []*integration.Record) []*integration.Record {
	// A stable sort keeps a key's records in batch order: the last of each
	// run is the one to keep.
	slices.SortStableFunc(recs, func(a, b *integration.Record) int { return cmp.Compare(a.Key, b.Key) })
	out := recs[:0]
	for i, rec := range recs {
		if i+1 < len(recs) && recs[i+1].Key == rec.Key {
			continue
		}
		out = append(out, rec)
	}
	return out
}

// columns are a batch's records as the arrays the upserts unnest.
type columns struct {
	keys, types, classes, from, to, props []string
}

func columnsOf(recs []*integration.Record, endpoints bool) columns {
	n := len(recs)
	c := columns{keys: make([]string, n), types: make([]string, n), classes: make([]string, n), props: make([]string, n)}
	if endpoints {
		c.from, c.to = make([]string, n), make([]string, n)
	}
	for i, rec := range recs {
		c.keys[i], c.types[i], c.classes[i], c.props[i] = rec.Key, rec.Type, rec.Class, string(rec.Body)
		if endpoints {
			c.from[i], c.to[i] = rec.From, rec.To
		}
	}
	return c
}

// AppendLogs implements jobs.Records. The chunk's key is claimed as a
// batch's is: a chunk sent twice at once is appended once.
func (r *Records) AppendLogs(ctx context.Context, k jobs.LogKey, text []byte) (bool, error) {
	dup := false
	err := r.s.qtx(ctx, func(qt *qpg.Tx) error {
		if _, err := qt.CheckLease(ctx, k.JobID, k.LeaseID); err != nil {
			return err
		}
		tx := qt.SQL()
		tag, err := tx.Exec(ctx, `INSERT INTO data_log_chunks(job_id, lease_id, seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			k.JobID, k.LeaseID, k.Seq)
		if err != nil {
			return fmt.Errorf("claim logs chunk %d of job %s: %w", k.Seq, k.JobID, err)
		}
		if dup = tag.RowsAffected() == 0; dup {
			return nil
		}
		return appendLogText(ctx, tx, k.JobID, text)
	})
	return dup, err
}

// appendLogText stores what fits under the job's cap as the next chunk
// and counts the rest as dropped. The job's stats row is locked (created
// if need be) before the size and the last chunk are read: appends to one
// job from several replicas take turns, so the cap holds and two chunks
// never take the same number.
func appendLogText(ctx context.Context, tx pgx.Tx, jobID string, text []byte) error {
	var size, chunk int64
	err := tx.QueryRow(ctx, `INSERT INTO data_job_stats(job_id) VALUES ($1)
		ON CONFLICT (job_id) DO UPDATE SET log_bytes = data_job_stats.log_bytes RETURNING log_bytes`, jobID).Scan(&size)
	if err != nil {
		return fmt.Errorf("lock the log size of job %s: %w", jobID, err)
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(chunk), 0) FROM data_job_logs WHERE job_id = $1`, jobID).Scan(&chunk); err != nil {
		return fmt.Errorf("read the last log chunk of job %s: %w", jobID, err)
	}
	keep := min(int64(len(text)), max(0, jobs.MaxJobLogBytes-size))
	if keep > 0 {
		// bytea: log text is stored as sent (SQLite keeps any bytes; a
		// text column would refuse a NUL, or a rune the cap cuts).
		if _, err := tx.Exec(ctx, `INSERT INTO data_job_logs(job_id, chunk, text) VALUES ($1, $2, $3)`, jobID, chunk+1, text[:keep]); err != nil {
			return fmt.Errorf("append logs of job %s: %w", jobID, err)
		}
	}
	_, err = tx.Exec(ctx, `UPDATE data_job_stats SET log_bytes = log_bytes + $2, log_dropped = log_dropped + $3 WHERE job_id = $1`,
		jobID, keep, int64(len(text))-keep)
	if err != nil {
		return fmt.Errorf("count logs of job %s: %w", jobID, err)
	}
	return nil
}

// Logs implements jobs.Records.
func (r *Records) Logs(ctx context.Context, jobID string) (string, error) {
	rows, err := r.s.pool.Query(ctx, `SELECT text FROM data_job_logs WHERE job_id = $1 ORDER BY chunk`, jobID)
	if err != nil {
		return "", fmt.Errorf("read logs of job %s: %w", jobID, err)
	}
	var out []byte
	var chunk []byte
	_, err = pgx.ForEachRow(rows, []any{&chunk}, func() error {
		out = append(out, chunk...)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read logs of job %s: %w", jobID, err)
	}
	var dropped int64
	err = r.s.pool.QueryRow(ctx, `SELECT log_dropped FROM data_job_stats WHERE job_id = $1`, jobID).Scan(&dropped)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("read log counts of job %s: %w", jobID, err)
	}
	if dropped > 0 {
		out = fmt.Appendf(out, "[platform: %d bytes of logs dropped over the %d-byte cap]\n", dropped, jobs.MaxJobLogBytes)
	}
	return string(out), nil
}

// LogsAfter implements jobs.Records: the cursor is the last chunk read.
func (r *Records) LogsAfter(ctx context.Context, jobID string, cursor int64) (string, int64, error) {
	rows, err := r.s.pool.Query(ctx, `SELECT chunk, text FROM data_job_logs WHERE job_id = $1 AND chunk > $2 ORDER BY chunk`, jobID, cursor)
	if err != nil {
		return "", cursor, fmt.Errorf("read logs of job %s: %w", jobID, err)
	}
	var out strings.Builder
	var n int64
	var text []byte
	_, err = pgx.ForEachRow(rows, []any{&n, &text}, func() error {
		out.Write(text)
		cursor = n
		return nil
	})
	if err != nil {
		return "", cursor, fmt.Errorf("read logs of job %s: %w", jobID, err)
	}
	return out.String(), cursor, nil
}

// Counts implements jobs.Records.
func (r *Records) Counts(ctx context.Context, jobID string) (jobs.Counts, error) {
	var c jobs.Counts
	var runner int64
	err := r.s.pool.QueryRow(ctx, `SELECT records, refused, runner_refused, dangling, lease_id FROM data_job_stats WHERE job_id = $1`, jobID).
		Scan(&c.Records, &c.Refused, &runner, &c.Dangling, &c.LeaseID)
	if errors.Is(err, pgx.ErrNoRows) {
		return jobs.Counts{}, nil
	}
	if err != nil {
		return jobs.Counts{}, fmt.Errorf("read counts of job %s: %w", jobID, err)
	}
	c.Refused += runner
	return c, nil
}

// Finish implements jobs.Records. The queue's finish updates the job's
// row, which waits for the ingests holding its lease check (FOR SHARE) to
// commit: the sweep then sees every batch the run sent, and a batch that
// comes later finds the lease gone.
func (r *Records) Finish(ctx context.Context, jobID, leaseID string, res queue.Result, rep jobs.RunReport) (*queue.Job, jobs.Sweep, error) {
	var job *queue.Job
	var sw jobs.Sweep
	err := r.s.qtx(ctx, func(qt *qpg.Tx) error {
		var err error
		if job, err = qt.Finish(ctx, jobID, leaseID, res); err != nil {
			return err
		}
		tx := qt.SQL()
		if _, err := tx.Exec(ctx, `INSERT INTO data_job_stats(job_id, runner_refused) VALUES ($1, $2)
			ON CONFLICT (job_id) DO UPDATE SET runner_refused = excluded.runner_refused`, jobID, rep.RunnerRefused); err != nil {
			return fmt.Errorf("count the runner's refusals of job %s: %w", jobID, err)
		}
		if !res.Succeeded {
			return nil
		}
		sw, err = sweep(ctx, tx, job.IntegrationID, jobID, qt.Now())
		return err
	})
	return job, sw, err
}

// sweep marks deleted what the integration had and the successful job
// jobID did not send.
func sweep(ctx context.Context, tx pgx.Tx, integrationID, jobID string, now time.Time) (jobs.Sweep, error) {
	var sw jobs.Sweep
	for _, t := range []struct {
		table string
		n     *int64
	}{{"data_entities", &sw.Entities}, {"data_relationships", &sw.Relationships}} {
		tag, err := tx.Exec(ctx, `UPDATE `+t.table+` SET deleted_at = $1 WHERE integration_id = $2 AND last_job_id <> $3 AND deleted_at IS NULL`,
			now.UnixMilli(), integrationID, jobID)
		if err != nil {
			return sw, fmt.Errorf("sweep %s: %w", t.table, err)
		}
		*t.n = tag.RowsAffected()
	}
	return sw, nil
}

// MarkDangling implements jobs.Records: the count is one statement, its
// result a short transaction of its own.
func (r *Records) MarkDangling(ctx context.Context, integrationID, jobID string) (int64, error) {
	var n int64
	err := r.s.pool.QueryRow(ctx, `SELECT count(*) FROM data_relationships AS rel
		WHERE rel.integration_id = $1 AND rel.deleted_at IS NULL AND (
			NOT EXISTS (SELECT 1 FROM data_entities AS e WHERE e.integration_id = $1 AND e.key = rel.from_key AND e.deleted_at IS NULL) OR
			NOT EXISTS (SELECT 1 FROM data_entities AS e WHERE e.integration_id = $1 AND e.key = rel.to_key AND e.deleted_at IS NULL))`,
		integrationID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count dangling relationships: %w", err)
	}
	return n, r.s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO data_job_stats(job_id, dangling) VALUES ($1, $2)
			ON CONFLICT (job_id) DO UPDATE SET dangling = excluded.dangling`, jobID, n)
		if err != nil {
			return fmt.Errorf("record dangling relationships of job %s: %w", jobID, err)
		}
		return nil
	})
}

// itemColumns returns the table of kind and the columns scanItem reads.
func itemColumns(kind string) (table, cols string) {
	if kind == api.KindRelationship {
		return "data_relationships", "key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at"
	}
	return "data_entities", "key, type, class, '', '', properties, last_job_id, updated_at, deleted_at"
}

// List implements jobs.Records.
func (r *Records) List(ctx context.Context, kind string, f jobs.ListFilter) (jobs.Page, error) {
	after, err := f.StartKey()
	if err != nil {
		return jobs.Page{}, err
	}
	q, args := listQuery(kind, f, after)
	rows, err := r.s.pool.Query(ctx, q, args...)
	if err != nil {
		return jobs.Page{}, fmt.Errorf("list %ss: %w", kind, err)
	}
	defer rows.Close()
	pager := jobs.NewPager(f.Limit)
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return jobs.Page{}, fmt.Errorf("list %ss: %w", kind, err)
		}
		if !pager.Add(it) {
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return jobs.Page{}, fmt.Errorf("list %ss: %w", kind, err)
	}
	return pager.Page(), nil
}

// listQuery builds List's query: keys after the cursor, in key order, one
// more than the page (its presence says there is a next page).
func listQuery(kind string, f jobs.ListFilter, after string) (string, []any) {
	table, cols := itemColumns(kind)
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q := `SELECT ` + cols + ` FROM ` + table + ` WHERE integration_id = ` + arg(f.IntegrationID) + ` AND key > ` + arg(after)
	if f.Type != "" {
		q += ` AND type = ` + arg(f.Type)
	}
	if f.KeyPrefix != "" {
		// A range on the primary key, not a LIKE: fast over millions
		// (the key columns collate "C", byte order, as SQLite's).
		q += ` AND key >= ` + arg(f.KeyPrefix) + ` AND key < ` + arg(f.KeyPrefix+"\U0010FFFF")
	}
	if kind == api.KindRelationship && f.From != "" {
		q += ` AND from_key = ` + arg(f.From)
	}
	if kind == api.KindRelationship && f.To != "" {
		q += ` AND to_key = ` + arg(f.To)
	}
	if !f.IncludeDeleted {
		q += ` AND deleted_at IS NULL`
	}
	q += ` ORDER BY key LIMIT ` + arg(f.Limit+1)
	return q, args
}

// Item implements jobs.Records.
func (r *Records) Item(ctx context.Context, kind, integrationID, key string) (api.Item, error) {
	table, cols := itemColumns(kind)
	rows, err := r.s.pool.Query(ctx, `SELECT `+cols+` FROM `+table+` WHERE integration_id = $1 AND key = $2`, integrationID, key)
	if err != nil {
		return api.Item{}, fmt.Errorf("read %s %q: %w", kind, key, err)
	}
	it, err := pgx.CollectExactlyOneRow(rows, scanItem)
	if errors.Is(err, pgx.ErrNoRows) {
		return api.Item{}, fmt.Errorf("%s %q: %w", kind, key, store.ErrNotFound)
	}
	if err != nil {
		return api.Item{}, fmt.Errorf("read %s %q: %w", kind, key, err)
	}
	return it, nil
}

func scanItem(row pgx.CollectableRow) (api.Item, error) {
	var it api.Item
	var props []byte
	var updated int64
	var deleted *int64
	if err := row.Scan(&it.Key, &it.Type, &it.Class, &it.From, &it.To, &props, &it.JobID, &updated, &deleted); err != nil {
		return it, err
	}
	it.Properties = json.RawMessage(props)
	it.UpdatedAt = time.UnixMilli(updated).UTC()
	if deleted != nil {
		t := time.UnixMilli(*deleted).UTC()
		it.DeletedAt = &t
	}
	return it, nil
}

// Purge implements jobs.Records: it works on the oldest pending purge, a
// bounded step at a time, so a million entities never hold locks for
// long. The purge's row is locked for the step, and a purge another
// replica is stepping through is skipped (done, for this caller, when no
// other is pending): two replicas never count each other's deletions as
// their own and drop a purge with rows left.
func (r *Records) Purge(ctx context.Context, limit int) (bool, error) {
	done := false
	err := r.s.qtx(ctx, func(qt *qpg.Tx) error {
		var integ string
		err := qt.SQL().QueryRow(ctx, `SELECT integration_id FROM data_purges ORDER BY requested_at LIMIT 1 FOR UPDATE SKIP LOCKED`).Scan(&integ)
		if errors.Is(err, pgx.ErrNoRows) {
			done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("find a pending purge: %w", err)
		}
		if err := purgeStep(ctx, qt, integ, int64(limit)); err != nil {
			return fmt.Errorf("purge integration %s: %w", integ, err)
		}
		return nil
	})
	return done, err
}

// purgeStep deletes up to limit rows of integ's data, then of its jobs,
// and the purge itself once nothing is left.
func purgeStep(ctx context.Context, qt *qpg.Tx, integ string, left int64) error {
	tx := qt.SQL()
	for _, table := range []string{"data_entities", "data_relationships"} {
		tag, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE integration_id = $1 AND key IN
			(SELECT key FROM `+table+` WHERE integration_id = $1 LIMIT $2)`, integ, left)
		if err != nil {
			return fmt.Errorf("delete %s: %w", table, err)
		}
		if left -= tag.RowsAffected(); left <= 0 {
			return nil
		}
	}
	ids, err := qt.DeleteIntegrationJobs(ctx, integ, int(left))
	if err != nil {
		return err
	}
	if err := dropJobData(ctx, tx, ids); err != nil {
		return err
	}
	if len(ids) == 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM data_purges WHERE integration_id = $1`, integ); err != nil {
			return fmt.Errorf("end the purge: %w", err)
		}
	}
	return nil
}

// PruneJobs implements jobs.Records.
func (r *Records) PruneJobs(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n := 0
	err := r.s.qtx(ctx, func(qt *qpg.Tx) error {
		ids, err := qt.DeleteFinished(ctx, cutoff, limit)
		if err != nil {
			return err
		}
		n = len(ids)
		return dropJobData(ctx, qt.SQL(), ids)
	})
	return n, err
}

// dropJobData deletes what the record store keeps per job.
func dropJobData(ctx context.Context, tx pgx.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, table := range []string{"data_job_logs", "data_log_chunks", "data_batches", "data_job_stats"} {
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE job_id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("drop %s of %d jobs: %w", table, len(ids), err)
		}
	}
	return nil
}
