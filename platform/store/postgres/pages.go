package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/platform/store"
)

// Cursors are opaque to clients: base64url of the sort key of the last
// row of a page (the same encoding as the SQLite store's).

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

// like escapes a LIKE pattern's wildcards (backslash, PostgreSQL's
// default escape character).
func like(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// where builds a WHERE clause of conditions, numbering each argument's
// placeholder ($1, $2, ...) as it is added.
type where struct {
	conds []string
	args  []any
}

// add appends cond, whose placeholders are written "?", with its args.
func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

// arg appends a and returns its placeholder.
func (w *where) arg(a any) string {
	w.args = append(w.args, a)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// CollectorsPage implements store.Store: by name, then ID. The query
// matches names case-insensitively (ILIKE), as SQLite's LIKE does.
func (s *Store) CollectorsPage(ctx context.Context, f store.CollectorFilter) ([]store.Collector, string, error) {
	after, err := uncursor(f.After, 2)
	if err != nil {
		return nil, "", err
	}
	var w where
	if after != nil {
		w.add(`(name, id) > (?, ?)`, after[0], after[1])
	}
	if f.Query != "" {
		w.add(`(name ILIKE ? OR id = ?)`, like(f.Query), f.Query)
	}
	if f.Pool != "" {
		w.add(`pool = ?`, f.Pool)
	}
	since := nanos(f.ActiveSince)
	switch f.Status {
	case "":
	case "pending":
		w.add(`enrolled_at = 0`)
	case "offline":
		w.add(`enrolled_at <> 0 AND last_seen_at < ?`, since)
	case "active":
		w.add(`enrolled_at <> 0 AND last_seen_at >= ? AND NOT `+degradedSQL, since)
	case "degraded":
		w.add(`enrolled_at <> 0 AND last_seen_at >= ? AND `+degradedSQL, since)
	default:
		return nil, "", fmt.Errorf("%w: status %q: want pending, active, degraded or offline", store.ErrInvalid, f.Status)
	}
	q := `SELECT ` + collectorCols + ` FROM collectors` + w.String() + ` ORDER BY name, id LIMIT ` + w.arg(f.Limit+1)
	list, err := queryAll(ctx, s.pool, s.scanCollector, q, w.args...)
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
	var w where
	if after != nil {
		w.add(`name > ?`, after[0])
	}
	if f.Query != "" {
		w.add(`(name ILIKE ? OR image ILIKE ? OR id = ?)`, like(f.Query), like(f.Query), f.Query)
	}
	if f.CollectorID != "" {
		w.add(`collector_id = ?`, f.CollectorID)
	}
	if f.Pool != "" {
		w.add(`pool = ?`, f.Pool)
	}
	q := `SELECT ` + integrationCols + ` FROM integrations` + w.String() + ` ORDER BY name LIMIT ` + w.arg(f.Limit+1)
	list, err := queryAll(ctx, s.pool, scanIntegration, q, w.args...)
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
	var w where
	if before != nil {
		n, err := strconv.ParseInt(before[0], 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("%w: bad cursor", store.ErrInvalid)
		}
		w.add(`seq < ?`, n)
	}
	for _, c := range []struct{ col, v string }{{"actor", f.Actor}, {"action", f.Action}, {"target", f.Target}} {
		if c.v != "" {
			w.add(c.col+` = ?`, c.v)
		}
	}
	if !f.Since.IsZero() {
		w.add(`time >= ?`, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add(`time < ?`, f.Until.UnixNano())
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log` + w.String() + ` ORDER BY seq DESC LIMIT ` + w.arg(f.Limit+1)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, "", err
	}
	out, err := pgx.CollectRows(rows, scanAudit)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = cursor(strconv.FormatInt(out[len(out)-1].Seq, 10))
	}
	return out, next, nil
}

// rollupBucket is the width of a heartbeat rollup bucket: the 24 h chart
// of a collector reads 288 rows, whatever the heartbeat interval.
const rollupBucket = 5 * time.Minute

// rollupKeep is how long 5-minute heartbeat rollups are kept.
const rollupKeep = 25 * time.Hour

// rollupBucketOf is the bucket a heartbeat at t is added to (by
// RecordHeartbeat, in its statement).
func rollupBucketOf(t time.Time) int64 { return t.Truncate(rollupBucket).UnixNano() }

// Rollups implements store.Store: the collector's buckets since since,
// oldest first.
func (s *Store) Rollups(ctx context.Context, collectorID string, since time.Time) ([]store.Rollup, error) {
	return queryAll(ctx, s.pool, func(r scanner) (store.Rollup, error) {
		var x store.Rollup
		var bucket int64
		err := r.Scan(&bucket, &x.Beats, &x.MemTotal, &x.MemFreeMin, &x.CPUs, &x.RunningMax)
		x.At = fromNanos(bucket)
		return x, err
	}, `SELECT bucket, beats, mem_total, mem_free_min, cpus, running_max FROM heartbeat_rollups
		WHERE collector_id = $1 AND bucket >= $2 ORDER BY bucket`, collectorID, rollupBucketOf(since))
}

// pruneRollups drops buckets older than rollupKeep (in Prune).
func pruneRollups(ctx context.Context, tx pgx.Tx, now time.Time) error {
	_, err := tx.Exec(ctx, `DELETE FROM heartbeat_rollups WHERE bucket < $1`, now.Add(-rollupKeep).UnixNano())
	return err
}
