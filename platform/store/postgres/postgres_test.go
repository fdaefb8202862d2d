package postgres_test

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/jobs/recordstest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/platform/store/storetest"
	"github.com/collectorhq/collector/queue"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var ctx = context.Background()

// testKey is the integrity key of the tests' stores.
var testKey = bytes.Repeat([]byte{7}, 32)

func open(t *testing.T, url string, now func() time.Time) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctx, url, postgres.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		clock := &testClock{}
		url := pgtest.NewDB(t)
		s := open(t, url, clock.Now)
		return storetest.Backend{Store: s, Queue: s.Queue(), Advance: clock.Advance, Raw: func(q string) error {
			_, err := rawConn(t, url).Exec(ctx, q)
			return err
		}}
	})
}

func TestRecordsConformance(t *testing.T) {
	recordstest.Run(t, func(t *testing.T) recordstest.Backend {
		clock := &testClock{}
		s := open(t, pgtest.NewDB(t), clock.Now)
		return recordstest.Backend{Records: s.Records(), Queue: s.Queue(), Advance: clock.Advance}
	})
}

// Replicas starting together migrate once: every Open succeeds and the
// schema is at the latest version.
func TestConcurrentMigration(t *testing.T) {
	url := pgtest.NewDB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := postgres.Open(ctx, url, postgres.Options{IntegrityKey: testKey, Queue: queue.DefaultConfig()})
			if err == nil {
				s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, url, nil)
	if v, err := s.SchemaVersion(ctx); err != nil || v != postgres.LatestVersion() {
		t.Fatalf("schema version = %d, %v; want %d", v, err, postgres.LatestVersion())
	}
}

// Audited acts of several replicas make one chain that verifies.
func TestAuditChainAcrossReplicas(t *testing.T) {
	url := pgtest.NewDB(t)
	a, b := open(t, url, nil), open(t, url, nil)
	var wg sync.WaitGroup
	for i, s := range []*postgres.Store{a, b, a, b} {
		wg.Go(func() {
			for j := range 25 {
				ev := store.Event{Time: time.Now(), Actor: "test", Action: "test.act", Target: string(rune('a'+i)) + string(rune('a'+j%26))}
				if err := s.AppendAudit(ctx, ev); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	res, err := a.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Entries != 100 {
		t.Fatalf("verify = %+v; want 100 entries, ok", res)
	}
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
