package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifyEvery is how often, about, a process sends a NOTIFY while it is
// enqueuing. Each transaction that sends one takes PostgreSQL's global
// notify lock at commit and wakes every listening session, each
// process's listener included, so under load the enqueues of a window
// share one: the first after a quiet window carries its own (no delay for
// a job that comes alone, the common case), the rest are sent together
// at the window's end, one statement for every key.
//
// Measured (BenchmarkVersusRiver, eight collectors, a producer and eight
// runners in one process): a window per key of 1 ms still sent a NOTIFY
// with almost every enqueue (each key was enqueued every 5 ms); one
// window per process of 5 ms sends one for every several jobs. The
// price is latency under load: a job enqueued within 5 ms of another
// reaches the other processes' waiters up to 5 ms later (the waiters in
// this process are woken at once, whatever the window), well inside the
// 100 ms that a pickup across replicas may take.
const notifyEvery = 5 * time.Millisecond

// debouncer decides which enqueues carry their NOTIFY and sends the
// others' after them, batched: an enqueue when none was sent for
// notifyEvery sends its key itself, in its INSERT (delivered at its
// commit); one within the window marks its key pending once it
// committed, and the flusher sends the pending keys when the window
// ends. So every committed enqueue is followed by a NOTIFY of its key
// that starts after its commit: none is lost to the debounce.
type debouncer struct {
	mu      sync.Mutex
	last    time.Time       // when this process last sent a NOTIFY
	pending map[string]bool // keys committed without a NOTIFY since
	kick    chan struct{}   // a key became pending (capacity 1)
	hold    int             // claims to refuse whatever the time (tests)
}

func newDebouncer() *debouncer {
	return &debouncer{pending: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// claim reports whether an enqueue about to be sent should carry its own
// NOTIFY (then counted as sent now). When it reports false, the caller
// calls pend(key) once the enqueue committed.
func (d *debouncer) claim(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hold > 0 {
		d.hold--
		return false
	}
	if !d.last.IsZero() && now.Sub(d.last) < notifyEvery {
		return false
	}
	d.last = now
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

// due is when the pending keys may go: a window after the last send.
func (d *debouncer) due() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last.Add(notifyEvery)
}

// take returns the pending keys, counted as sent now.
func (d *debouncer) take(now time.Time) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) == 0 {
		return nil
	}
	keys := make([]string, 0, len(d.pending))
	for k := range d.pending {
		keys = append(keys, k)
	}
	clear(d.pending)
	d.last = now
	return keys
}

// flushNotifications sends the pending keys when their window ends,
// until stopFlush closes; then it sends what is left and closes
// flushDone.
func (q *Queue) flushNotifications() {
	defer close(q.flushDone)
	for {
		select {
		case <-q.debounce.kick:
		case <-q.stopFlush:
			q.sendPending()
			return
		}
		if wait := time.Until(q.debounce.due()); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-q.stopFlush:
				t.Stop()
				q.sendPending()
				return
			}
		}
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
