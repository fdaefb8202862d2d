package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/pgtest"
)

// Of two replicas, one leads a task at a time; when the leader goes (its
// connection closes, as when its process dies), the other takes over.
func TestLeaderHandover(t *testing.T) {
	url := pgtest.NewDB(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var running, leads atomic.Int32
	var overlap atomic.Bool
	task := func(id int32) func(context.Context) {
		return func(ctx context.Context) {
			if running.Add(1) > 1 {
				overlap.Store(true)
			}
			leads.Store(id)
			<-ctx.Done()
			running.Add(-1)
		}
	}
	var refused atomic.Int32 // tries that did not take the lock
	start := func(id int32) (stop func()) {
		s := open(t, url, nil)
		l := s.Leader(log)
		l.Retry = 100 * time.Millisecond
		l.OnTry = func(got bool) {
			if !got {
				refused.Add(1)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Lead(ctx, "scheduler", task(id)) }()
		return func() { cancel(); <-done; s.Close() }
	}
	stopA := start(1)
	waitUntil(t, "replica 1 to lead", func() bool { return leads.Load() == 1 })
	stopB := start(2)
	defer stopB()
	waitUntil(t, "replica 2 to try five times", func() bool { return refused.Load() >= 5 })
	if leads.Load() != 1 || overlap.Load() {
		t.Fatalf("replica 2 led while replica 1 did (leader %d, overlap %v)", leads.Load(), overlap.Load())
	}
	stopA()
	waitUntil(t, "replica 2 to take over", func() bool { return leads.Load() == 2 })
	if overlap.Load() {
		t.Fatal("two replicas led at once")
	}
}

func waitUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
