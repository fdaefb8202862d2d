package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/jobs/recordstest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/platform/store/storetest"
	"github.com/collectorhq/collector/queue"
)

// raw opens the database file directly, as an attacker with write access
// to it would.
func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var ctx = context.Background()

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		clock := &testClock{}
		path := filepath.Join(t.TempDir(), "p.db")
		s := openWith(t, path, testKey, clock.Now)
		return storetest.Backend{Store: s, Queue: s.Queue(), Advance: clock.Advance, Raw: func(q string) error {
			_, err := raw(t, path).Exec(q)
			return err
		}}
	})
}

func TestRecordsConformance(t *testing.T) {
	recordstest.Run(t, func(t *testing.T) recordstest.Backend {
		clock := &testClock{}
		s := openWith(t, filepath.Join(t.TempDir(), "p.db"), testKey, clock.Now)
		return recordstest.Backend{Records: s.Records(), Queue: s.Queue(), Advance: clock.Advance}
	})
}

// testKey is the integrity key of the tests' stores.
var testKey = bytes.Repeat([]byte{7}, 32)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	return openWith(t, path, testKey, nil)
}

func openWith(t *testing.T, path string, key []byte, now func() time.Time) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(ctx, path, sqlite.Options{IntegrityKey: key, Queue: queue.DefaultConfig(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testClock is real time plus an offset.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func ev(action, target string) store.Event {
	return store.Event{Time: time.Now(), Actor: "test", Action: action, Target: target}
}

func collector(t *testing.T, s *sqlite.Store, id string) {
	t.Helper()
	now := time.Now()
	err := s.CreateCollector(ctx, store.Collector{ID: id, Name: id, CreatedAt: now},
		store.EnrollmentToken{Hash: "h-" + id, CollectorID: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("collector.created", id))
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := open(t, path)
	collector(t, s, "c1")
	s.Close()
	s2 := open(t, path)
	v, err := s2.SchemaVersion(ctx)
	if err != nil || v != len(sqlite.Migrations()) {
		t.Fatalf("schema version = %d, %v", v, err)
	}
	if _, err := s2.Collector(ctx, "c1"); err != nil {
		t.Fatalf("data lost across reopen: %v", err)
	}
	var mode string
	if err := raw(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
}
