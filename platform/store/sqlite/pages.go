package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/collectorhq/collector/platform/store"
)

// Cursors are opaque to clients: base64url of the sort key of the last
// row of a page.

func cursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "\x00")))
}

func uncursor(c string, n int) ([]string, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 4096 {
		return nil, fmt.Errorf("%w: cursor is not one this platform returned", store.ErrInvalid)
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != n {
		return nil, fmt.Errorf("%w: cursor is not one this platform returned", store.ErrInvalid)
	}
	return parts, nil
}

// like escapes a LIKE pattern's wildcards (ESCAPE '\').
func like(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// CollectorsPage implements store.Store: by name, then ID.
func (s *Store) CollectorsPage(ctx context.Context, f store.CollectorFilter) ([]store.Collector, string, error) {
	after, err := uncursor(f.After, 2)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + collectorCols + ` FROM collectors WHERE 1`
	var args []any
	if after != nil {
		q += ` AND (name, id) > (?, ?)`
		args = append(args, after[0], after[1])
	}
	if f.Query != "" {
		q += ` AND (name LIKE ? ESCAPE '\' OR id = ?)`
		args = append(args, like(f.Query), f.Query)
	}
	if f.Pool != "" {
		q += ` AND pool = ?`
		args = append(args, f.Pool)
	}
	since := nanos(f.ActiveSince)
	switch f.Status {
	case "":
	case "pending":
		q += ` AND enrolled_at = 0`
	case "offline":
		q += ` AND enrolled_at != 0 AND last_seen_at < ?`
		args = append(args, since)
	case "degraded", "active":
		op := "NOT"
		if f.Status == "degraded" {
			op = ""
		}
		q += ` AND enrolled_at != 0 AND last_seen_at >= ? AND ` + op + ` (COALESCE(json_extract(last_beat, '$.engine_error'), '') != '' OR
			COALESCE(json_extract(last_beat, '$.runner_state'), '') NOT IN ('running', 'restarted'))`
		args = append(args, since)
	default:
		return nil, "", fmt.Errorf("%w: status %q: want pending, active, degraded or offline", store.ErrInvalid, f.Status)
	}
	q += ` ORDER BY name, id LIMIT ?`
	args = append(args, f.Limit+1)
	list, err := queryAll(ctx, s.r, s.scanCollector, q, args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) > f.Limit {
		list = list[:f.Limit]
		last := list[len(list)-1]
		next = cursor(last.Name, last.ID)
	}
	return list, next, nil
}

// IntegrationsPage implements store.Store: by name.
func (s *Store) IntegrationsPage(ctx context.Context, f store.IntegrationFilter) ([]store.Integration, string, error) {
	after, err := uncursor(f.After, 1)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + integrationCols + ` FROM integrations WHERE 1`
	var args []any
	if after != nil {
		q += ` AND name > ?`
		args = append(args, after[0])
	}
	if f.Query != "" {
		q += ` AND (name LIKE ? ESCAPE '\' OR image LIKE ? ESCAPE '\' OR id = ?)`
		args = append(args, like(f.Query), like(f.Query), f.Query)
	}
	if f.CollectorID != "" {
		q += ` AND collector_id = ?`
		args = append(args, f.CollectorID)
	}
	if f.Pool != "" {
		q += ` AND pool = ?`
		args = append(args, f.Pool)
	}
	q += ` ORDER BY name LIMIT ?`
	args = append(args, f.Limit+1)
	list, err := queryAll(ctx, s.r, scanIntegration, q, args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) > f.Limit {
		list = list[:f.Limit]
		next = cursor(list[len(list)-1].Name)
	}
	return list, next, nil
}

// AuditPage implements store.Store: newest first.
func (s *Store) AuditPage(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, string, error) {
	before, err := uncursor(f.Before, 1)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT seq, time, actor, action, target, details, prev_hash, hash, mac FROM audit_log WHERE 1`
	var args []any
	if before != nil {
		n, err := strconv.ParseInt(before[0], 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("%w: bad cursor", store.ErrInvalid)
		}
		q += ` AND seq < ?`
		args = append(args, n)
	}
	for _, c := range []struct{ col, v string }{{"actor", f.Actor}, {"action", f.Action}, {"target", f.Target}} {
		if c.v != "" {
			q += ` AND ` + c.col + ` = ?`
			args = append(args, c.v)
		}
	}
	if !f.Since.IsZero() {
		q += ` AND time >= ?`
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		q += ` AND time < ?`
		args = append(args, f.Until.UnixNano())
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, f.Limit+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = cursor(strconv.FormatInt(out[len(out)-1].Seq, 10))
	}
	return out, next, nil
}

// rollupBucket is the width of a heartbeat rollup bucket.
const rollupBucket = 5 * time.Minute

// rollupKeep is how long rollups are kept.
const rollupKeep = 25 * time.Hour

// rollUp adds hb to its collector's 5-minute bucket (inside the
// heartbeat's transaction): the 24 h chart of a collector reads 288 rows,
// whatever the heartbeat interval.
func (s *Store) rollUp(ctx context.Context, tx *sql.Tx, collectorID string, hb store.Heartbeat) error {
	bucket := hb.At.Truncate(rollupBucket).UnixNano()
	_, err := tx.StmtContext(ctx, s.beatRollup).ExecContext(ctx, collectorID, bucket, hb.MemTotal, hb.MemFree, hb.CPUs, hb.Running)
	return err
}

// Rollups implements store.Store: the collector's buckets since since,
// oldest first.
func (s *Store) Rollups(ctx context.Context, collectorID string, since time.Time) ([]store.Rollup, error) {
	return queryAll(ctx, s.r, func(r scanner) (store.Rollup, error) {
		var x store.Rollup
		var bucket int64
		err := r.Scan(&bucket, &x.Beats, &x.MemTotal, &x.MemFreeMin, &x.CPUs, &x.RunningMax)
		x.At = fromNanos(bucket)
		return x, err
	}, `SELECT bucket, beats, mem_total, mem_free_min, cpus, running_max FROM heartbeat_rollups
		WHERE collector_id = ? AND bucket >= ? ORDER BY bucket`, collectorID, since.Truncate(rollupBucket).UnixNano())
}

// pruneRollups drops buckets older than rollupKeep (in Prune).
func pruneRollups(ctx context.Context, tx *sql.Tx, now time.Time) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM heartbeat_rollups WHERE bucket < ?`, now.Add(-rollupKeep).UnixNano())
	return err
}
