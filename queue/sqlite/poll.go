package sqlite

import (
	"context"
	"time"
)

// The fallback poll. Enqueues, reassignments, requeues and expiries wake
// the waiters they concern, in this process; what no write announces —
// a lease passing its expiry, a pool job aging past the hand-off, room
// freed on a collector — is found by one look every PollInterval for all
// the waiters together: the expired leases are expired (which wakes their
// queues), and each collector and pool with queued jobs is woken to look
// for itself. A waiter whose queue has nothing queued costs nothing
// between its wake-ups, however many wait: a thousand long polls are one
// query a second, not a thousand (TestSlowClients measures it).
const (
	// queuedCollectorsSQL and queuedPoolsSQL: the collectors and pools with queued jobs, each
	// through its partial index.
	queuedCollectorsSQL = `SELECT DISTINCT collector_id FROM queue_jobs INDEXED BY queue_jobs_next
		WHERE state = 'queued' AND collector_id != ''`
	queuedPoolsSQL = `SELECT DISTINCT pool FROM queue_jobs INDEXED BY queue_jobs_next_pool
		WHERE state = 'queued' AND collector_id = ''`
	// anyExpiredSQL: has a lease passed at ?1.
	anyExpiredSQL = `SELECT EXISTS (SELECT 1 FROM queue_jobs INDEXED BY queue_jobs_lease
		WHERE state IN ('leased','running') AND lease_expires_at <= ?1)`
)

// pollLoop looks for the waiters every PollInterval until Close.
func (q *Queue) pollLoop() {
	t := time.NewTicker(q.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-q.closed:
			return
		case <-t.C:
			if q.anyWaiting() {
				ctx, cancel := context.WithTimeout(context.Background(), q.cfg.PollInterval*5)
				q.pollOnce(ctx)
				cancel()
			}
		}
	}
}

func (q *Queue) anyWaiting() bool {
	q.waitMu.Lock()
	defer q.waitMu.Unlock()
	return len(q.waiting) > 0
}

// pollOnce expires what has expired and wakes the queues with queued jobs.
// A failure is left to the next tick (and the waiters' own deadlines).
func (q *Queue) pollOnce(ctx context.Context) {
	var expired bool
	if err := q.rdb.QueryRowContext(ctx, anyExpiredSQL, q.now().UnixNano()).Scan(&expired); err == nil && expired {
		q.Update(ctx, func(t *Tx) error {
			n, err := t.expire(ctx, q.now())
			q.lazyExpired.Add(int64(n))
			return err
		})
	}
	for _, look := range []struct {
		query string
		key   func(string) string
	}{{queuedCollectorsSQL, func(c string) string { return c }}, {queuedPoolsSQL, poolKey}} {
		rows, err := q.rdb.QueryContext(ctx, look.query)
		if err != nil {
			continue
		}
		for rows.Next() {
			var target string
			if rows.Scan(&target) == nil {
				q.notifier.Notify(look.key(target))
			}
		}
		rows.Close()
	}
}
