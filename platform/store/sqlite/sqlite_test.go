package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/platform/store/storetest"
)

var ctx = context.Background()

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, filepath.Join(t.TempDir(), "p.db")) })
}

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
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
	if err != nil || v != 1 {
		t.Fatalf("schema version = %d, %v", v, err)
	}
	if _, err := s2.Collector(ctx, "c1"); err != nil {
		t.Fatalf("data lost across reopen: %v", err)
	}
	var mode string
	if err := s2.DB().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
}
