package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

var _ jobs.Records = (*Records)(nil)

// Records is the SQLite record store (jobs.Records), in the store's file:
// its lease checks and the finish's sweep run in the queue's transactions.
type Records struct {
	s *Store
}

func newRecords(ctx context.Context, s *Store) (*Records, error) {
	return &Records{s: s}, nil
}

// Applied implements jobs.Records.
func (r *Records) Applied(ctx context.Context, k jobs.BatchKey) (jobs.BatchCounts, bool, error) {
	var c jobs.BatchCounts
	err := r.s.r.QueryRowContext(ctx, `SELECT accepted, refused FROM data_batches WHERE job_id=? AND lease_id=? AND seq=?`,
		k.JobID, k.LeaseID, k.Seq).Scan(&c.Accepted, &c.Refused)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	return c, err == nil, err
}

type rowQuerier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func applied(ctx context.Context, q rowQuerier, k jobs.BatchKey) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM data_batches WHERE job_id=? AND lease_id=? AND seq=?`, k.JobID, k.LeaseID, k.Seq).Scan(&n)
	return n > 0, err
}

// Ingest implements jobs.Records.
func (r *Records) Ingest(ctx context.Context, b *jobs.Batch) (bool, error) {
	k := b.Key
	dup := false
	err := r.s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		if _, err := qt.CheckLease(ctx, k.JobID, k.LeaseID); err != nil {
			return err
		}
		tx := qt.SQL()
		var err error
		if dup, err = applied(ctx, tx, k); err != nil || dup {
			return err
		}
		up := newUpserter(tx, k, qt.Now())
		for _, rec := range b.Records {
			if err := up.put(ctx, rec); err != nil {
				up.close()
				return err
			}
		}
		if err := up.flush(ctx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO data_batches(job_id, lease_id, seq, accepted, refused) VALUES (?,?,?,?,?)`,
			k.JobID, k.LeaseID, k.Seq, len(b.Records), b.Refused); err != nil {
			return err
		}
		// Counted for this attempt: a batch of a new lease starts over.
		_, err = tx.ExecContext(ctx, `INSERT INTO data_job_stats(job_id, lease_id, records, refused) VALUES (?,?,?,?)
			ON CONFLICT(job_id) DO UPDATE SET
				records = CASE WHEN lease_id IN (excluded.lease_id, '') THEN records + excluded.records ELSE excluded.records END,
				refused = CASE WHEN lease_id IN (excluded.lease_id, '') THEN refused + excluded.refused ELSE excluded.refused END,
				lease_id = excluded.lease_id`,
			k.JobID, k.LeaseID, len(b.Records), b.Refused)
		return err
	})
	return dup, err
}

// upsertRows is the records one insert statement writes: one statement
// per record cost more in binding and stepping than the row itself.
const upsertRows = 256

// probeEvery is how often, in statements, a table whose last insert found
// rows already stored tries a multi-row insert again.
const probeEvery = 8

// upserter writes the records of one ingest transaction. Rows go in
// upsertRows at a time with INSERT OR IGNORE, whose rows never need undoing
// (an upsert of several rows may abort half-way: SQLite then keeps a
// statement journal, a copy of every page it changes, in a temporary
// file — with keys spread over a large table, more than the rows
// themselves). When some rows of a statement were there already (a key
// stored before, or given twice), the statement's rows are written again
// one upsert each, in order, so each key keeps its last record; a table
// that needed that goes one upsert a row for the next probeEvery
// statements (a later sync of the same keys).
type upserter struct {
	tx  *sql.Tx
	k   jobs.BatchKey
	now int64
	ent upsertTable
	rel upsertTable
}

// upsertTable is one table's pending rows and statements.
type upsertTable struct {
	insert, upsert string // INSERT OR IGNORE … VALUES; its one-row upsert
	row            string // one row of VALUES
	cols           int
	full, one      *sql.Stmt
	args           []any
	single         int // statements left to write one upsert a row
}

func newUpserter(tx *sql.Tx, k jobs.BatchKey, now time.Time) *upserter {
	return &upserter{tx: tx, k: k, now: now.UnixMilli(),
		ent: newUpsertTable(`data_entities(integration_id, key, type, class, properties, last_job_id, updated_at, deleted_at)`,
			`type=excluded.type, class=excluded.class, properties=excluded.properties,
			last_job_id=excluded.last_job_id, updated_at=excluded.updated_at, deleted_at=NULL`, 7),
		rel: newUpsertTable(`data_relationships(integration_id, key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at)`,
			`type=excluded.type, class=excluded.class, from_key=excluded.from_key, to_key=excluded.to_key,
			properties=excluded.properties, last_job_id=excluded.last_job_id, updated_at=excluded.updated_at, deleted_at=NULL`, 9),
	}
}

func newUpsertTable(into, set string, cols int) upsertTable {
	row := "(" + strings.Repeat("?,", cols) + "NULL)"
	return upsertTable{
		insert: `INSERT OR IGNORE INTO ` + into + ` VALUES `,
		upsert: `INSERT INTO ` + into + ` VALUES ` + row + ` ON CONFLICT(integration_id, key) DO UPDATE SET ` + set,
		row:    row,
		cols:   cols,
	}
}

func (u *upserter) put(ctx context.Context, r *integration.Record) error {
	t := &u.rel
	if r.Kind == integration.KindEntity {
		t = &u.ent
		t.args = append(t.args, u.k.IntegrationID, r.Key, r.Type, r.Class, string(r.Body), u.k.JobID, u.now)
	} else {
		t.args = append(t.args, u.k.IntegrationID, r.Key, r.Type, r.Class, r.From, r.To, string(r.Body), u.k.JobID, u.now)
	}
	if len(t.args) < upsertRows*t.cols {
		return nil
	}
	return t.write(ctx, u.tx)
}

// flush writes the rows still pending and closes the statements.
func (u *upserter) flush(ctx context.Context) error {
	return errors.Join(u.ent.flush(ctx, u.tx), u.rel.flush(ctx, u.tx))
}

// close closes the statements, writing nothing more (the transaction
// failed).
func (u *upserter) close() {
	u.ent.close()
	u.rel.close()
}

// write writes the pending rows.
func (t *upsertTable) write(ctx context.Context, tx *sql.Tx) error {
	rows := len(t.args) / t.cols
	defer func() { t.args = t.args[:0] }()
	if t.single > 0 {
		t.single--
		return t.writeEach(ctx, tx)
	}
	var res sql.Result
	var err error
	if rows == upsertRows {
		if t.full == nil {
			if t.full, err = tx.PrepareContext(ctx, t.statement(rows)); err != nil {
				return err
			}
		}
		res, err = t.full.ExecContext(ctx, t.args...)
	} else {
		res, err = tx.ExecContext(ctx, t.statement(rows), t.args...)
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == int64(rows) {
		return err
	}
	t.single = probeEvery - 1
	return t.writeEach(ctx, tx)
}

// writeEach writes the pending rows one upsert each, in order.
func (t *upsertTable) writeEach(ctx context.Context, tx *sql.Tx) error {
	if t.one == nil {
		var err error
		if t.one, err = tx.PrepareContext(ctx, t.upsert); err != nil {
			return err
		}
	}
	for row := range len(t.args) / t.cols {
		if _, err := t.one.ExecContext(ctx, t.args[row*t.cols:(row+1)*t.cols]...); err != nil {
			return err
		}
	}
	return nil
}

// flush writes the rows left and closes the statements.
func (t *upsertTable) flush(ctx context.Context, tx *sql.Tx) error {
	var err error
	if len(t.args) > 0 {
		err = t.write(ctx, tx)
	}
	return errors.Join(err, t.close())
}

func (t *upsertTable) close() error {
	var err error
	for _, st := range []*sql.Stmt{t.full, t.one} {
		if st != nil {
			err = errors.Join(err, st.Close())
		}
	}
	t.full, t.one = nil, nil
	return err
}

// statement is the INSERT OR IGNORE of rows rows.
func (t *upsertTable) statement(rows int) string {
	var b strings.Builder
	b.WriteString(t.insert)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.row)
	}
	return b.String()
}

// AppendLogs implements jobs.Records.
func (r *Records) AppendLogs(ctx context.Context, k jobs.LogKey, text []byte) (bool, error) {
	dup := false
	err := r.s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		if _, err := qt.CheckLease(ctx, k.JobID, k.LeaseID); err != nil {
			return err
		}
		tx := qt.SQL()
		res, err := tx.ExecContext(ctx, `INSERT INTO data_log_chunks(job_id, lease_id, seq) VALUES (?,?,?) ON CONFLICT DO NOTHING`,
			k.JobID, k.LeaseID, k.Seq)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			dup = true
			return nil
		}
		return appendLogText(ctx, tx, k.JobID, text)
	})
	return dup, err
}

func appendLogText(ctx context.Context, tx *sql.Tx, jobID string, text []byte) error {
	var size, chunk int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce((SELECT log_bytes FROM data_job_stats WHERE job_id=?),0),
		coalesce((SELECT max(chunk) FROM data_job_logs WHERE job_id=?),0)`, jobID, jobID).Scan(&size, &chunk); err != nil {
		return err
	}
	keep := min(int64(len(text)), max(0, jobs.MaxJobLogBytes-size))
	if keep > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO data_job_logs(job_id, chunk, text) VALUES (?,?,?)`, jobID, chunk+1, string(text[:keep])); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO data_job_stats(job_id, log_bytes, log_dropped) VALUES (?,?,?)
		ON CONFLICT(job_id) DO UPDATE SET log_bytes=log_bytes+excluded.log_bytes, log_dropped=log_dropped+excluded.log_dropped`,
		jobID, keep, int64(len(text))-keep)
	return err
}

// Logs implements jobs.Records.
func (r *Records) Logs(ctx context.Context, jobID string) (string, error) {
	texts, err := queryAll(ctx, r.s.r, func(sc scanner) (string, error) {
		var t string
		return t, sc.Scan(&t)
	}, `SELECT text FROM data_job_logs WHERE job_id=? ORDER BY chunk`, jobID)
	if err != nil {
		return "", err
	}
	var out []byte
	for _, t := range texts {
		out = append(out, t...)
	}
	var dropped int64
	err = r.s.r.QueryRowContext(ctx, `SELECT log_dropped FROM data_job_stats WHERE job_id=?`, jobID).Scan(&dropped)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	if dropped > 0 {
		out = fmt.Appendf(out, "[platform: %d bytes of logs dropped over the %d-byte cap]\n", dropped, jobs.MaxJobLogBytes)
	}
	return string(out), nil
}

// LogsAfter implements jobs.Records: the cursor is the last chunk read.
func (r *Records) LogsAfter(ctx context.Context, jobID string, cursor int64) (string, int64, error) {
	type chunk struct {
		n    int64
		text string
	}
	cs, err := queryAll(ctx, r.s.r, func(sc scanner) (chunk, error) {
		var c chunk
		return c, sc.Scan(&c.n, &c.text)
	}, `SELECT chunk, text FROM data_job_logs WHERE job_id=? AND chunk > ? ORDER BY chunk`, jobID, cursor)
	if err != nil {
		return "", cursor, err
	}
	var out strings.Builder
	for _, c := range cs {
		out.WriteString(c.text)
		cursor = c.n
	}
	return out.String(), cursor, nil
}

// Counts implements jobs.Records.
func (r *Records) Counts(ctx context.Context, jobID string) (jobs.Counts, error) {
	var c jobs.Counts
	var runner int64
	err := r.s.r.QueryRowContext(ctx, `SELECT records, refused, runner_refused, dangling, lease_id FROM data_job_stats WHERE job_id=?`, jobID).
		Scan(&c.Records, &c.Refused, &runner, &c.Dangling, &c.LeaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Counts{}, nil
	}
	c.Refused += runner
	return c, err
}

// Finish implements jobs.Records.
func (r *Records) Finish(ctx context.Context, jobID, leaseID string, res queue.Result, rep jobs.RunReport) (*queue.Job, jobs.Sweep, error) {
	var job *queue.Job
	var sw jobs.Sweep
	err := r.s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		var err error
		if job, err = qt.Finish(ctx, jobID, leaseID, res); err != nil {
			return err
		}
		tx := qt.SQL()
		if _, err := tx.ExecContext(ctx, `INSERT INTO data_job_stats(job_id, runner_refused) VALUES (?,?)
			ON CONFLICT(job_id) DO UPDATE SET runner_refused=excluded.runner_refused`, jobID, rep.RunnerRefused); err != nil {
			return err
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
func sweep(ctx context.Context, tx *sql.Tx, integrationID, jobID string, now time.Time) (jobs.Sweep, error) {
	var sw jobs.Sweep
	for _, t := range []struct {
		table string
		n     *int64
	}{{"data_entities", &sw.Entities}, {"data_relationships", &sw.Relationships}} {
		res, err := tx.ExecContext(ctx, sweepSQL(t.table), now.UnixMilli(), integrationID, jobID)
		if err != nil {
			return sw, fmt.Errorf("sweep %s: %w", t.table, err)
		}
		*t.n, _ = res.RowsAffected()
	}
	return sw, nil
}

// sweepSQL marks deleted the rows of table an integration's job did not
// write: deleted_at, integration, job.
func sweepSQL(table string) string {
	return `UPDATE ` + table + ` SET deleted_at=? WHERE integration_id=? AND last_job_id<>? AND deleted_at IS NULL`
}

// danglingSQL counts an integration's live relationships whose from or to
// is not a live entity of it.
const danglingSQL = `SELECT count(*) FROM data_relationships AS rel
	WHERE rel.integration_id = ?1 AND rel.deleted_at IS NULL AND (
		NOT EXISTS (SELECT 1 FROM data_entities AS e WHERE e.integration_id = ?1 AND e.key = rel.from_key AND e.deleted_at IS NULL) OR
		NOT EXISTS (SELECT 1 FROM data_entities AS e WHERE e.integration_id = ?1 AND e.key = rel.to_key AND e.deleted_at IS NULL))`

// MarkDangling implements jobs.Records. The count runs on the read pool;
// only its result takes the writer.
func (r *Records) MarkDangling(ctx context.Context, integrationID, jobID string) (int64, error) {
	var n int64
	err := r.s.r.QueryRowContext(ctx, danglingSQL, integrationID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count dangling relationships: %w", err)
	}
	return n, r.s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO data_job_stats(job_id, dangling) VALUES (?,?)
			ON CONFLICT(job_id) DO UPDATE SET dangling=excluded.dangling`, jobID, n)
		return err
	})
}

// List implements jobs.Records.
func (r *Records) List(ctx context.Context, kind string, f jobs.ListFilter) (jobs.Page, error) {
	after, err := f.StartKey()
	if err != nil {
		return jobs.Page{}, err
	}
	q, args := listQuery(kind, f, after)
	rows, err := r.s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return jobs.Page{}, err
	}
	defer rows.Close()
	pager := jobs.NewPager(f.Limit)
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return jobs.Page{}, err
		}
		if !pager.Add(it) {
			break
		}
	}
	return pager.Page(), rows.Err()
}

// listQuery is List's query of a page after the key after.
func listQuery(kind string, f jobs.ListFilter, after string) (string, []any) {
	table, cols := "data_entities", "key, type, class, '', '', properties, last_job_id, updated_at, deleted_at"
	if kind == api.KindRelationship {
		table, cols = "data_relationships", "key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at"
	}
	// A page of one entity's relationships reads them through its from or
	// to index and sorts them: left to choose, SQLite would walk the
	// integration's relationships in key order to find them.
	switch {
	case kind == api.KindRelationship && f.From != "":
		table += ` INDEXED BY data_relationships_from`
	case kind == api.KindRelationship && f.To != "":
		table += ` INDEXED BY data_relationships_to`
	}
	q := `SELECT ` + cols + ` FROM ` + table + ` WHERE integration_id=? AND key > ?`
	args := []any{f.IntegrationID, after}
	if f.Type != "" {
		q += ` AND type=?`
		args = append(args, f.Type)
	}
	if f.KeyPrefix != "" {
		// A range on the primary key, not a LIKE: fast over millions.
		q += ` AND key >= ? AND key < ?`
		args = append(args, f.KeyPrefix, f.KeyPrefix+"\U0010FFFF")
	}
	if kind == api.KindRelationship && f.From != "" {
		q += ` AND from_key = ?`
		args = append(args, f.From)
	}
	if kind == api.KindRelationship && f.To != "" {
		q += ` AND to_key = ?`
		args = append(args, f.To)
	}
	if !f.IncludeDeleted {
		q += ` AND deleted_at IS NULL`
	}
	// One more than the page: its presence says there is a next page.
	q += ` ORDER BY key LIMIT ?`
	args = append(args, f.Limit+1)
	return q, args
}

// Item implements jobs.Records.
func (r *Records) Item(ctx context.Context, kind, integrationID, key string) (api.Item, error) {
	table, cols := "data_entities", "key, type, class, '', '', properties, last_job_id, updated_at, deleted_at"
	if kind == api.KindRelationship {
		table, cols = "data_relationships", "key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at"
	}
	rows, err := r.s.r.QueryContext(ctx, `SELECT `+cols+` FROM `+table+` WHERE integration_id = ? AND key = ?`, integrationID, key)
	if err != nil {
		return api.Item{}, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return api.Item{}, err
		}
		return api.Item{}, fmt.Errorf("%s %q: %w", kind, key, store.ErrNotFound)
	}
	return scanItem(rows)
}

func scanItem(rows *sql.Rows) (api.Item, error) {
	var it api.Item
	var props string
	var updated int64
	var deleted sql.NullInt64
	if err := rows.Scan(&it.Key, &it.Type, &it.Class, &it.From, &it.To, &props, &it.JobID, &updated, &deleted); err != nil {
		return it, err
	}
	it.Properties = json.RawMessage(props)
	it.UpdatedAt = time.UnixMilli(updated).UTC()
	if deleted.Valid {
		t := time.UnixMilli(deleted.Int64).UTC()
		it.DeletedAt = &t
	}
	return it, nil
}

// Purge implements jobs.Records: it works on the oldest pending purge, a
// bounded step at a time, so a million entities never hold the writer for
// long.
func (r *Records) Purge(ctx context.Context, limit int) (bool, error) {
	var integ string
	err := r.s.r.QueryRowContext(ctx, `SELECT integration_id FROM data_purges ORDER BY requested_at LIMIT 1`).Scan(&integ)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	err = r.s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		tx := qt.SQL()
		left := int64(limit)
		for _, table := range []string{"data_entities", "data_relationships"} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE integration_id = ?1 AND key IN
				(SELECT key FROM `+table+` WHERE integration_id = ?1 LIMIT ?2)`, integ, left)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			if left -= n; left <= 0 {
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
			_, err = tx.ExecContext(ctx, `DELETE FROM data_purges WHERE integration_id = ?`, integ)
		}
		return err
	})
	return false, err
}

// PruneJobs implements jobs.Records.
func (r *Records) PruneJobs(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n := 0
	err := r.s.q.Update(ctx, func(qt *qsqlite.Tx) error {
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
func dropJobData(ctx context.Context, tx *sql.Tx, ids []string) error {
	for _, id := range ids {
		for _, table := range []string{"data_job_logs", "data_log_chunks", "data_batches", "data_job_stats"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE job_id = ?`, id); err != nil {
				return fmt.Errorf("drop %s of job %s: %w", table, id, err)
			}
		}
	}
	return nil
}
