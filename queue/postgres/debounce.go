package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifyEvery is how often, about, Enqueue tells the other processes
// about one key (a collector's or a pool's queue). Each transaction that
// sends a NOTIFY takes PostgreSQL's global notify lock at commit and
// signals every listening session, so a NOTIFY per enqueue serializes
// concurrent producers' commits; one per key per window wakes the same
// waiters. Measured here (eight producers on one key): 1 ms gave most of
// what 5 ms did (about a fifth more enqueues per second than a NOTIFY
// each), while a key enqueued every few milliseconds (a job at a time to
// one collector) took up to the window more to be picked up elsewhere:
// at 5 ms the median cross-process pickup went from 0.9 to 4.7 ms, at
// 1 ms it did not move.
const notifyEvery = time.Millisecond

// debouncer decides which enqueues carry their NOTIFY and sends the
// others' after them, batched: an enqueue of a key not sent for
// notifyEvery sends it itself, in its INSERT (delivered at its commit);
// one within the window marks its key pending once it committed, and the
// flusher sends the pending keys at most once per window. So every
// committed enqueue is followed by a NOTIFY of its key that starts after
// its commit: none is lost to the debounce, at the cost of up to
// notifyEvery of latency under load.
type debouncer struct {
	mu      sync.Mutex
	sent    map[string]time.Time // when a NOTIFY last carried each key
	pending map[string]bool      // keys committed without a NOTIFY since
	kick    chan struct{}        // a key became pending (capacity 1)
}

func newDebouncer() *debouncer {
	return &debouncer{sent: map[string]time.Time{}, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// claim reports whether an enqueue of key about to be sent should carry
// its own NOTIFY (then counted as sent now). When it reports false, the
// caller calls pend(key) once the enqueue committed.
func (d *debouncer) claim(key string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if last, ok := d.sent[key]; ok && now.Sub(last) < notifyEvery {
		return false
	}
	d.sent[key] = now
	return true
}

// pend schedules a NOTIFY of key, for an enqueue that committed without
// one.
func (d *debouncer) pend(key string) {
	d.mu.Lock()
	d.pending[key] = true
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// take returns the pending keys, counted as sent now, and forgets the
// keys whose window has passed.
func (d *debouncer) take(now time.Time) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, at := range d.sent {
		if now.Sub(at) >= notifyEvery {
			delete(d.sent, k)
		}
	}
	keys := make([]string, 0, len(d.pending))
	for k := range d.pending {
		keys = append(keys, k)
		d.sent[k] = now
	}
	clear(d.pending)
	return keys
}

// flushNotifications sends the pending keys, at most once per notifyEvery,
// until stopFlush closes; then it sends what is left and closes flushDone.
func (q *Queue) flushNotifications() {
	defer close(q.flushDone)
	var last time.Time
	for {
		select {
		case <-q.debounce.kick:
		case <-q.stopFlush:
			q.sendPending()
			return
		}
		if wait := notifyEvery - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-q.stopFlush:
				t.Stop()
				q.sendPending()
				return
			}
		}
		last = time.Now()
		q.sendPending()
	}
}

// sendPending sends the pending keys on Channel in one statement. A
// failure only costs the other processes latency (their fallback poll).
func (q *Queue) sendPending() {
	keys := q.debounce.take(time.Now())
	if len(keys) == 0 {
		return
	}
	payloads := make([]string, len(keys))
	for i, k := range keys {
		payloads[i] = q.sender + " " + k
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = notifySQL.exec(ctx, q.pool, pgx.NamedArgs{"channel": Channel, "payloads": payloads})
}
