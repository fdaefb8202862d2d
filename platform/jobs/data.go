package jobs

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integration"
)

// Data keeps what jobs collect, in SQLite tables of the platform's file.
type Data struct {
	w *sql.DB // the platform's one writer connection
	r *sql.DB // readers (may be w)
}

// maxLineErrors bounds the refusals an ingest result lists (all are counted).
const maxLineErrors = 20

// MaxJobLogBytes caps the logs kept per job; later lines are dropped and counted.
const MaxJobLogBytes = 4 << 20

var dataSchema = []string{
	`CREATE TABLE IF NOT EXISTS data_entities (
		integration_id TEXT NOT NULL,
		key            TEXT NOT NULL,
		type           TEXT NOT NULL,
		class          TEXT NOT NULL,
		properties     TEXT NOT NULL,
		last_job_id    TEXT NOT NULL,
		updated_at     INTEGER NOT NULL,
		deleted_at     INTEGER,
		PRIMARY KEY (integration_id, key)
	) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS data_entities_type ON data_entities(integration_id, type)`,
	`CREATE TABLE IF NOT EXISTS data_relationships (
		integration_id TEXT NOT NULL,
		key            TEXT NOT NULL,
		type           TEXT NOT NULL,
		class          TEXT NOT NULL,
		from_key       TEXT NOT NULL,
		to_key         TEXT NOT NULL,
		properties     TEXT NOT NULL,
		last_job_id    TEXT NOT NULL,
		updated_at     INTEGER NOT NULL,
		deleted_at     INTEGER,
		PRIMARY KEY (integration_id, key)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS data_batches (
		job_id   TEXT NOT NULL,
		lease_id TEXT NOT NULL,
		seq      INTEGER NOT NULL,
		accepted INTEGER NOT NULL,
		refused  INTEGER NOT NULL,
		PRIMARY KEY (job_id, lease_id, seq)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS data_job_logs (
		job_id  TEXT NOT NULL,
		chunk   INTEGER NOT NULL,
		text    TEXT NOT NULL,
		PRIMARY KEY (job_id, chunk)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS data_job_stats (
		job_id   TEXT PRIMARY KEY,
		records  INTEGER NOT NULL DEFAULT 0,
		refused  INTEGER NOT NULL DEFAULT 0,
		log_bytes INTEGER NOT NULL DEFAULT 0,
		log_dropped INTEGER NOT NULL DEFAULT 0
	)`,
}

// OpenData creates the data tables if needed. w is the platform's writer
// handle; r a read pool on the same file (or w).
func OpenData(ctx context.Context, w, r *sql.DB) (*Data, error) {
	for _, q := range dataSchema {
		if _, err := w.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("data schema: %w", err)
		}
	}
	if r == nil {
		r = w
	}
	return &Data{w: w, r: r}, nil
}

// BatchKey names one records upload: a retried batch has the same key.
type BatchKey struct {
	IntegrationID, JobID, LeaseID string
	Seq                           int
}

// Ingest validates and upserts one NDJSON batch in one transaction. A batch
// whose key was applied before changes nothing and answers Duplicate.
// Refused lines are counted and the first few listed with their line
// numbers; the others are applied. The body (bounded by the caller) is read
// and validated before the write transaction begins: the platform has one
// writer, and a collector on a slow link must not hold it.
func (d *Data) Ingest(ctx context.Context, k BatchKey, body io.Reader) (*api.IngestResult, error) {
	res := &api.IngestResult{Seq: k.Seq}
	if dup, err := d.applied(ctx, d.r, k); err != nil || dup {
		res.Duplicate = dup
		return res, err
	}
	var recs []*integration.Record
	if err := scanLines(body, func(line int, b []byte, tooLong bool) error {
		if tooLong {
			refuse(res, line, fmt.Sprintf("record over the %d-byte limit", api.MaxRecordBytes))
			return nil
		}
		rec, err := integration.ParseRecord(bytes.Clone(b))
		if err != nil {
			refuse(res, line, err.Error())
			return nil
		}
		if res.Accepted+res.Refused >= api.MaxBatchRecords {
			return fmt.Errorf("%w: over %d records in one batch", ErrBadBatch, api.MaxBatchRecords)
		}
		res.Accepted++
		recs = append(recs, rec)
		return nil
	}); err != nil {
		return nil, err
	}
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// Checked again under the lock: a retry may have raced this upload.
	if dup, err := d.applied(ctx, tx, k); err != nil || dup {
		return &api.IngestResult{Seq: k.Seq, Duplicate: dup}, err
	}
	up, err := newUpserter(ctx, tx, k)
	if err != nil {
		return nil, err
	}
	defer up.close()
	for _, rec := range recs {
		if err := up.put(ctx, rec); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO data_batches(job_id, lease_id, seq, accepted, refused) VALUES (?,?,?,?,?)`,
		k.JobID, k.LeaseID, k.Seq, res.Accepted, res.Refused); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO data_job_stats(job_id, records, refused) VALUES (?,?,?)
		ON CONFLICT(job_id) DO UPDATE SET records=records+excluded.records, refused=refused+excluded.refused`,
		k.JobID, res.Accepted, res.Refused); err != nil {
		return nil, err
	}
	up.close()
	return res, tx.Commit()
}

// applied reports whether the batch k was applied before.
func (d *Data) applied(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, k BatchKey) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM data_batches WHERE job_id=? AND lease_id=? AND seq=?`, k.JobID, k.LeaseID, k.Seq).Scan(&n)
	return n > 0, err
}

// ErrBadBatch is a batch refused whole (too many records, a broken body).
var ErrBadBatch = errors.New("bad records batch")

// refuse counts a refused line and lists the first few.
func refuse(res *api.IngestResult, line int, reason string) {
	res.Refused++
	if len(res.Errors) < maxLineErrors {
		res.Errors = append(res.Errors, api.LineError{Line: line, Reason: reason})
	}
}

// scanLines calls f for each line of r (1-based numbers, newline removed),
// never holding more than one record's worth: a longer line is reported as
// tooLong and skipped. Blank lines are skipped.
func scanLines(r io.Reader, f func(line int, b []byte, tooLong bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	over := false
	line := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !over {
				long = append(long, chunk...)
				if len(long) > api.MaxRecordBytes {
					over, long = true, nil
				}
			}
			continue
		}
		if len(chunk) > 0 || long != nil || over {
			line++
			b := chunk
			if long != nil {
				b = append(long, chunk...)
				long = nil
			}
			tooLong := over || len(b) > api.MaxRecordBytes+2
			over = false
			if trimmed := trimEOL(b); len(trimmed) > 0 || tooLong {
				if ferr := f(line, trimmed, tooLong); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read body: %w", ErrBadBatch, err)
		}
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// upserter holds the prepared statements of one ingest transaction.
type upserter struct {
	k        BatchKey
	now      int64
	ent, rel *sql.Stmt
}

func newUpserter(ctx context.Context, tx *sql.Tx, k BatchKey) (*upserter, error) {
	ent, err := tx.PrepareContext(ctx, `INSERT INTO data_entities(integration_id, key, type, class, properties, last_job_id, updated_at, deleted_at)
		VALUES (?,?,?,?,?,?,?,NULL)
		ON CONFLICT(integration_id, key) DO UPDATE SET type=excluded.type, class=excluded.class, properties=excluded.properties,
			last_job_id=excluded.last_job_id, updated_at=excluded.updated_at, deleted_at=NULL`)
	if err != nil {
		return nil, err
	}
	rel, err := tx.PrepareContext(ctx, `INSERT INTO data_relationships(integration_id, key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at)
		VALUES (?,?,?,?,?,?,?,?,?,NULL)
		ON CONFLICT(integration_id, key) DO UPDATE SET type=excluded.type, class=excluded.class, from_key=excluded.from_key, to_key=excluded.to_key,
			properties=excluded.properties, last_job_id=excluded.last_job_id, updated_at=excluded.updated_at, deleted_at=NULL`)
	if err != nil {
		ent.Close()
		return nil, err
	}
	return &upserter{k: k, now: time.Now().UnixMilli(), ent: ent, rel: rel}, nil
}

func (u *upserter) put(ctx context.Context, r *integration.Record) error {
	var err error
	if r.Kind == integration.KindEntity {
		_, err = u.ent.ExecContext(ctx, u.k.IntegrationID, r.Key, r.Type, r.Class, string(r.Body), u.k.JobID, u.now)
	} else {
		_, err = u.rel.ExecContext(ctx, u.k.IntegrationID, r.Key, r.Type, r.Class, r.From, r.To, string(r.Body), u.k.JobID, u.now)
	}
	return err
}

func (u *upserter) close() {
	u.ent.Close()
	u.rel.Close()
}

// Sweep marks deleted what the integration had before and the successful
// job jobID did not send. Call it only for a succeeded job.
func (d *Data) Sweep(ctx context.Context, integrationID, jobID string) (entities, relationships int64, err error) {
	now := time.Now().UnixMilli()
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	for _, t := range []struct {
		table string
		n     *int64
	}{{"data_entities", &entities}, {"data_relationships", &relationships}} {
		res, err := tx.ExecContext(ctx, `UPDATE `+t.table+` SET deleted_at=? WHERE integration_id=? AND last_job_id<>? AND deleted_at IS NULL`, now, integrationID, jobID)
		if err != nil {
			return 0, 0, err
		}
		*t.n, _ = res.RowsAffected()
	}
	return entities, relationships, tx.Commit()
}

// AppendLogs adds text to a job's logs, up to MaxJobLogBytes; what does not
// fit is counted as dropped.
func (d *Data) AppendLogs(ctx context.Context, jobID string, text []byte) error {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var size, chunk int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce((SELECT log_bytes FROM data_job_stats WHERE job_id=?),0),
		coalesce((SELECT max(chunk) FROM data_job_logs WHERE job_id=?),0)`, jobID, jobID).Scan(&size, &chunk); err != nil {
		return err
	}
	keep := int64(len(text))
	if size+keep > MaxJobLogBytes {
		keep = max(0, MaxJobLogBytes-size)
	}
	if keep > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO data_job_logs(job_id, chunk, text) VALUES (?,?,?)`, jobID, chunk+1, string(text[:keep])); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO data_job_stats(job_id, log_bytes, log_dropped) VALUES (?,?,?)
		ON CONFLICT(job_id) DO UPDATE SET log_bytes=log_bytes+excluded.log_bytes, log_dropped=log_dropped+excluded.log_dropped`,
		jobID, keep, int64(len(text))-keep); err != nil {
		return err
	}
	return tx.Commit()
}

// Logs returns a job's logs, with a note when some were dropped.
func (d *Data) Logs(ctx context.Context, jobID string) (string, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT text FROM data_job_logs WHERE job_id=? ORDER BY chunk`, jobID)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return "", err
		}
		out = append(out, t...)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	var dropped int64
	d.r.QueryRowContext(ctx, `SELECT log_dropped FROM data_job_stats WHERE job_id=?`, jobID).Scan(&dropped)
	if dropped > 0 {
		out = fmt.Appendf(out, "[platform: %d bytes of logs dropped over the %d-byte cap]\n", dropped, MaxJobLogBytes)
	}
	return string(out), nil
}

// JobCounts returns the records accepted and refused for a job.
func (d *Data) JobCounts(ctx context.Context, jobID string) (records, refused int64, err error) {
	err = d.r.QueryRowContext(ctx, `SELECT records, refused FROM data_job_stats WHERE job_id=?`, jobID).Scan(&records, &refused)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	return records, refused, err
}

// ListFilter selects stored items.
type ListFilter struct {
	IntegrationID  string
	Type           string
	IncludeDeleted bool
	Limit          int
}

// List returns entities (kind api.KindEntity) or relationships of an
// integration, ordered by key.
func (d *Data) List(ctx context.Context, kind string, f ListFilter) ([]api.Item, error) {
	table, cols := "data_entities", "key, type, class, '', '', properties, last_job_id, updated_at, deleted_at"
	if kind == api.KindRelationship {
		table, cols = "data_relationships", "key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at"
	}
	q := `SELECT ` + cols + ` FROM ` + table + ` WHERE integration_id=?`
	args := []any{f.IntegrationID}
	if f.Type != "" {
		q += ` AND type=?`
		args = append(args, f.Type)
	}
	if !f.IncludeDeleted {
		q += ` AND deleted_at IS NULL`
	}
	q += ` ORDER BY key`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.Item
	for rows.Next() {
		var it api.Item
		var props string
		var updated int64
		var deleted sql.NullInt64
		if err := rows.Scan(&it.Key, &it.Type, &it.Class, &it.From, &it.To, &props, &it.JobID, &updated, &deleted); err != nil {
			return nil, err
		}
		it.Properties = json.RawMessage(props)
		it.UpdatedAt = time.UnixMilli(updated).UTC()
		if deleted.Valid {
			t := time.UnixMilli(deleted.Int64).UTC()
			it.DeletedAt = &t
		}
		out = append(out, it)
	}
	return out, rows.Err()
}
