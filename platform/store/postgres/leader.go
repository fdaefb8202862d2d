package postgres

import (
	"context"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// leaderClass is the first key of the leadership advisory locks (the
// second is the task's name, hashed).
const leaderClass = 0x636f6c6c

// Leader elects, among the replicas on one database, the one that runs a
// task (platform.Leader): the one holding a session-level advisory lock
// on its own connection. The lock goes with the connection: a leader that
// dies (its socket closes) or loses its connection hands over at once,
// and the others, trying every Retry, take it.
type Leader struct {
	s   *Store
	log *slog.Logger
	// Retry is how often a follower tries to take the lock, and how often
	// the leader checks that its connection still holds it.
	Retry time.Duration
	// OnTry, if set, is called after each try to take the lock, with its
	// outcome (tests: a follower has tried, and not taken it).
	OnTry func(got bool)
}

// Leader returns the store's leader election.
func (s *Store) Leader(log *slog.Logger) *Leader {
	return &Leader{s: s, log: log, Retry: 2 * time.Second}
}

// Lead runs fn whenever this process holds the leadership of name, with
// a context that ends when it loses it, until ctx ends.
func (l *Leader) Lead(ctx context.Context, name string, fn func(context.Context)) {
	h := fnv.New32a()
	h.Write([]byte(name))
	key := int32(h.Sum32())
	for ctx.Err() == nil {
		l.leadOnce(ctx, name, key, fn)
		select {
		case <-ctx.Done():
		case <-time.After(l.Retry):
		}
	}
}

// leadOnce connects, tries the lock and, once held, runs fn until ctx ends
// or the connection stops answering.
func (l *Leader) leadOnce(ctx context.Context, name string, key int32, fn func(context.Context)) {
	conn, err := pgx.ConnectConfig(ctx, l.s.pool.Config().ConnConfig.Copy())
	if err != nil {
		l.log.Warn("leader election: cannot connect; retrying", "task", name, "err", err)
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx) // releases the lock, if held
	}()
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, int32(leaderClass), key).Scan(&got); err != nil {
			return
		}
		if l.OnTry != nil {
			l.OnTry(got)
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.Retry):
		}
	}
	l.log.Info("this replica leads", "task", name)
	lctx, lost := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(lctx)
	}()
	// Watch the connection: if it stops answering, the server may have
	// dropped it (and the lock with it), so stop fn before another replica
	// starts.
	t := time.NewTicker(l.Retry)
	defer t.Stop()
	for {
		select {
		case <-done:
			lost()
			return
		case <-ctx.Done():
			lost()
			<-done
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, l.Retry)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				l.log.Warn("leader election: lost the database connection; stepping down", "task", name, "err", err)
				lost()
				<-done
				return
			}
		}
	}
}
