package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/internal/notify"
)

var _ queue.Queue = (*Queue)(nil)

// Channel is the LISTEN/NOTIFY channel on which queues of one database
// tell each other that a collector's or a pool's queue may have work. A
// payload is "<sender> c:<collector>" or "<sender> p:<pool>"; a queue
// ignores its own (it woke its waiters in process already).
const Channel = "collector_queue"

// listenRetry is how long the listener waits before reconnecting.
const listenRetry = time.Second

// Queue is a queue.Queue stored in PostgreSQL. Create it with New or Open.
type Queue struct {
	pool     *pgxpool.Pool
	ownsPool bool
	cfg      queue.Config
	now      func() time.Time
	onPark   func(collectorID string)
	// sender tells this queue's notifications from other processes'.
	sender string

	notifier *notify.Notifier
	// listening is set while the listener holds its LISTEN: only then do
	// the other processes' notifications arrive, and a queue found empty
	// stays known empty (notify.Notifier.Quiet) until one does.
	listening atomic.Bool
	// debounce spaces Enqueue's notifications per key (see debouncer),
	// sending the deferred ones until stopFlush closes.
	debounce  *debouncer
	stopFlush chan struct{}
	flushDone chan struct{}
	// waiting counts the Next calls parked per collector (Waiting).
	waitMu  sync.Mutex
	waiting map[string]int
	// members are the known members of each pool, by collector ID.
	members map[string]map[string]member
	// lazyExpired counts leases Next expired since the last ExpireLeases.
	lazyExpired atomic.Int64
	// lastSweep is when (the queue's clock, Unix nanoseconds) a lease of
	// this process last swept expired leases (see sweepDue).
	lastSweep atomic.Int64

	stopListen context.CancelFunc
	listenDone chan struct{}

	closed    chan struct{}
	closeOnce sync.Once
}

// Option is an optional knob of New and Open.
type Option func(*Queue)

// WithClock makes the queue read the time from now: lease expiries,
// creation and finish times (tests move it). Waiting stays in real time.
// Every process on one database should read the same time: the queue
// compares the times they stored.
func WithClock(now func() time.Time) Option { return func(q *Queue) { q.now = now } }

// WithParkHook calls f each time a Next call of collectorID, having found
// nothing, is about to wait: tests use it to know a long poll is parked
// instead of sleeping. f runs on Next's goroutine and must not block.
func WithParkHook(f func(collectorID string)) Option { return func(q *Queue) { q.onPark = f } }

// Open connects to the database at url (a PostgreSQL URL or key=value
// string, with pgxpool's pool_ parameters) and returns a queue that owns
// the connection pool: Close closes it. Unless the URL sets
// pool_max_conns, the pool holds up to twice the CPUs, at least 8.
func Open(ctx context.Context, url string, cfg queue.Config, opts ...Option) (*Queue, error) {
	pc, err := PoolConfig(url, 0)
	if err != nil {
		return nil, fmt.Errorf("open postgres queue: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres queue: %w", err)
	}
	q, err := New(ctx, pool, cfg, opts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	q.ownsPool = true
	return q, nil
}

// PoolConfig parses url (a PostgreSQL URL or key=value string, with
// pgxpool's pool_ parameters) into a pool of at most maxConns connections;
// with maxConns 0, the URL's pool_max_conns, else twice the CPUs, at
// least 8. Its error never quotes the URL (it may hold a password).
func PoolConfig(url string, maxConns int) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("the database URL does not parse (see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING)")
	}
	switch {
	case maxConns > 0:
		pc.MaxConns = int32(maxConns)
	case !strings.Contains(url, "pool_max_conns"):
		pc.MaxConns = int32(max(8, 2*runtime.NumCPU()))
	}
	return pc, nil
}

// New returns a queue on an open pool, typically the platform's, after
// migrating its queue_ tables, and starts its listener (one connection of
// its own, outside the pool). The caller keeps ownership of pool: Close
// does not close it.
func New(ctx context.Context, pool *pgxpool.Pool, cfg queue.Config, opts ...Option) (*Queue, error) {
	if pool == nil {
		return nil, errors.New("new postgres queue: nil pool")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new postgres queue: %w", err)
	}
	q := &Queue{pool: pool, cfg: cfg, now: time.Now, sender: randomHex(8), notifier: notify.New(),
		debounce: newDebouncer(), stopFlush: make(chan struct{}), flushDone: make(chan struct{}),
		waiting: map[string]int{}, members: map[string]map[string]member{},
		closed: make(chan struct{}), listenDone: make(chan struct{})}
	for _, o := range opts {
		o(q)
	}
	if err := q.migrate(ctx); err != nil {
		return nil, fmt.Errorf("new postgres queue: %w", err)
	}
	lctx, stop := context.WithCancel(context.Background())
	q.stopListen = stop
	first := make(chan error, 1)
	go q.listen(lctx, first)
	select {
	case err := <-first:
		if err != nil {
			stop()
			<-q.listenDone
			return nil, fmt.Errorf("new postgres queue: listen: %w", err)
		}
	case <-ctx.Done():
		stop()
		<-q.listenDone
		return nil, fmt.Errorf("new postgres queue: listen: %w", ctx.Err())
	}
	go q.flushNotifications()
	return q, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// listen keeps one connection LISTENing on Channel and wakes this
// process's waiters for the keys other processes send. A lost connection
// is reopened after listenRetry; what was sent meanwhile is lost, which
// the waiters' fallback poll (Config.PollInterval) covers. The first
// attempt's outcome goes to first.
func (q *Queue) listen(ctx context.Context, first chan<- error) {
	defer close(q.listenDone)
	for {
		conn, err := q.connectListener(ctx)
		if first != nil {
			first <- err
			if err != nil {
				return
			}
			first = nil
		}
		if err == nil {
			q.listening.Store(true)
			q.receive(ctx, conn)
			// What was sent from now until the next LISTEN is lost.
			q.listening.Store(false)
			q.notifier.Forget()
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(closeCtx)
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(listenRetry):
		}
	}
}

func (q *Queue) connectListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, q.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// receive hands notifications to the notifier until the connection fails
// or ctx ends.
func (q *Queue) receive(ctx context.Context, conn *pgx.Conn) {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		sender, key, ok := strings.Cut(n.Payload, " ")
		if !ok || sender == q.sender {
			continue
		}
		if k, ok := notifyKey(key); ok {
			q.notifier.Notify(k)
		}
	}
}

// payload is what Channel carries for a target: its kind and name.
func payloadKey(to queue.Target) string {
	if to.Pool != "" && to.CollectorID == "" {
		return "p:" + to.Pool
	}
	return "c:" + to.CollectorID
}

// notifyKey turns a payload's key into the notifier's.
func notifyKey(key string) (string, bool) {
	switch {
	case strings.HasPrefix(key, "c:"):
		return key[2:], true
	case strings.HasPrefix(key, "p:"):
		return poolKey(key[2:]), true
	}
	return "", false
}

// Close stops the listener, wakes waiting Next calls with queue.ErrClosed,
// sends the notifications Enqueue deferred and, for a queue made by Open,
// closes the pool. It is safe to call more than once.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		close(q.closed)
		q.stopListen()
		<-q.listenDone
		close(q.stopFlush)
		<-q.flushDone
		if q.ownsPool {
			q.pool.Close()
		}
	})
	return nil
}

func (q *Queue) isClosed() bool {
	select {
	case <-q.closed:
		return true
	default:
		return false
	}
}
