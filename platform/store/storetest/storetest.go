// Package storetest is the conformance suite every store.Store backend
// runs: Run(t, newStore) checks the rules the platform relies on (one
// transaction per act with its audit entry, one-time enrollment tokens, jti
// replay refusal, bounded heartbeat history, concurrent writers).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/store"
)

var ctx = context.Background()

// Run runs the suite; newStore returns a fresh, empty store for each test
// (and closes it when the test ends).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	for name, test := range map[string]func(*testing.T, store.Store){
		"FailedActWritesNothing":     testFailedActWritesNothing,
		"EnrollTokenRules":           testEnrollTokenRules,
		"JTIReplayAndPrune":          testJTIReplayAndPrune,
		"ConcurrentWriters":          testConcurrentWriters,
		"DeleteRefusedWhileAssigned": testDeleteRefusedWhileAssigned,
		"AuditChain":                 testAuditChain,
	} {
		t.Run(name, func(t *testing.T) { test(t, newStore(t)) })
	}
}

func ev(action, target string) store.Event {
	return store.Event{Time: time.Now(), Actor: "test", Action: action, Target: target}
}

func collector(t *testing.T, s store.Store, id string) {
	t.Helper()
	now := time.Now()
	err := s.CreateCollector(ctx, store.Collector{ID: id, Name: id, CreatedAt: now},
		store.EnrollmentToken{Hash: "h-" + id, CollectorID: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("collector.created", id))
	if err != nil {
		t.Fatal(err)
	}
}

// testFailedActWritesNothing: a failing step rolls back the act and its
// audit entry together.
func testFailedActWritesNothing(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	now := time.Now()
	// Same token hash again: the token insert fails after the collector insert.
	err := s.CreateCollector(ctx, store.Collector{ID: "c2", Name: "c2", CreatedAt: now},
		store.EnrollmentToken{Hash: "h-c1", CollectorID: "c2", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("collector.created", "c2"))
	if err == nil {
		t.Fatal("duplicate token hash accepted")
	}
	if _, err := s.Collector(ctx, "c2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("half-written collector: %v", err)
	}
	es, _ := s.AuditEntries(ctx, 0, 100)
	if len(es) != 1 {
		t.Errorf("audit has %d entries, want 1", len(es))
	}
	// Enrollment with a bad token changes nothing either.
	err = s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "nope", IdentityKey: []byte("k"), Now: now}, ev("collector.enrolled", "c1"))
	if !errors.Is(err, store.ErrTokenInvalid) {
		t.Errorf("enroll with a wrong token: %v", err)
	}
	c, _ := s.Collector(ctx, "c1")
	if !c.EnrolledAt.IsZero() || c.IdentityKey != nil {
		t.Errorf("collector changed by a refused enrollment: %+v", c)
	}
}

func testEnrollTokenRules(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	collector(t, s, "c2")
	now := time.Now()
	enroll := func(id, hash string, at time.Time) error {
		return s.Enroll(ctx, store.Enrollment{CollectorID: id, TokenHash: hash, IdentityKey: []byte("k"), HPKEKey: []byte("h"), Now: at}, ev("collector.enrolled", id))
	}
	if err := enroll("c2", "h-c1", now); !errors.Is(err, store.ErrTokenInvalid) {
		t.Errorf("other collector's token: %v", err)
	}
	if err := enroll("c1", "h-c1", now.Add(2*time.Hour)); !errors.Is(err, store.ErrTokenExpired) {
		t.Errorf("expired: %v", err)
	}
	if err := enroll("c1", "h-c1", now); err != nil {
		t.Fatal(err)
	}
	if err := enroll("c1", "h-c1", now); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("reused: %v", err)
	}
	if err := s.ReplaceEnrollmentToken(ctx, store.EnrollmentToken{Hash: "h2-c2", CollectorID: "c2", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("collector.token_issued", "c2")); err != nil {
		t.Fatal(err)
	}
	if err := enroll("c2", "h-c2", now); !errors.Is(err, store.ErrTokenRevoked) {
		t.Errorf("replaced: %v", err)
	}
}

func testJTIReplayAndPrune(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	now := time.Now()
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "h-c1", IdentityKey: []byte("k"), Now: now}, ev("e", "c1")); err != nil {
		t.Fatal(err)
	}
	issue := func(jti, hash string, at time.Time) error {
		return s.IssueAccessToken(ctx, jti, at.Add(time.Minute), store.AccessToken{Hash: hash, CollectorID: "c1", ExpiresAt: at.Add(15 * time.Minute)}, at)
	}
	if err := issue("j1", "a1", now); err != nil {
		t.Fatal(err)
	}
	if err := issue("j1", "a2", now); !errors.Is(err, store.ErrReplay) {
		t.Errorf("replay: %v", err)
	}
	if id, err := s.AccessTokenCollector(ctx, "a1", now); err != nil || id != "c1" {
		t.Errorf("lookup: %q %v", id, err)
	}
	if _, err := s.AccessTokenCollector(ctx, "a2", now); !errors.Is(err, store.ErrAccessInvalid) {
		t.Errorf("token of a refused exchange exists: %v", err)
	}
	if _, err := s.AccessTokenCollector(ctx, "a1", now.Add(16*time.Minute)); !errors.Is(err, store.ErrAccessInvalid) {
		t.Errorf("expired token still valid: %v", err)
	}
	if err := s.Prune(ctx, now.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// testConcurrentWriters: many goroutines writing at once never see
// SQLITE_BUSY, thanks to the one-writer discipline.
func testConcurrentWriters(t *testing.T, s store.Store) {
	for i := 0; i < 8; i++ {
		collector(t, s, fmt.Sprintf("c%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if err := s.RecordHeartbeat(ctx, id, store.Heartbeat{At: time.Now(), Running: j}, 10); err != nil {
					errs <- err
				}
				if _, err := s.Collectors(ctx); err != nil {
					errs <- err
				}
			}
		}(fmt.Sprintf("c%d", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	hbs, err := s.Heartbeats(ctx, "c3", 100)
	if err != nil || len(hbs) != 10 || hbs[0].Running != 49 {
		t.Errorf("history = %d entries (newest %v), %v; want the newest 10", len(hbs), hbs, err)
	}
}

func testDeleteRefusedWhileAssigned(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	now := time.Now()
	in := store.Integration{ID: "i1", Name: "ldap", Image: "img", SealedConfig: []byte("sealed"), Interval: time.Hour,
		CollectorID: "c1", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateIntegration(ctx, in, ev("integration.created", "i1")); err != nil {
		t.Fatal(err)
	}
	err := s.DeleteCollector(ctx, "c1", ev("collector.deleted", "c1"))
	var ae *store.AssignedError
	if !errors.As(err, &ae) || !errors.Is(err, store.ErrConflict) || len(ae.Integrations) != 1 || ae.Integrations[0].Name != "ldap" {
		t.Fatalf("delete while assigned: %v", err)
	}
	in.CollectorID = ""
	if err := s.UpdateIntegration(ctx, in, ev("integration.updated", "i1")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCollector(ctx, "c1", ev("collector.deleted", "c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collector(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted collector: %v", err)
	}
	in.CollectorID = "c1"
	if err := s.UpdateIntegration(ctx, in, ev("integration.assigned", "i1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("assign to a deleted collector: %v", err)
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	for i := 0; i < 5; i++ {
		collector(t, s, fmt.Sprintf("c%d", i))
	}
	if err := s.AppendAudit(ctx, ev("job.requested", "i1")); err != nil {
		t.Fatal(err)
	}
	es, err := s.AuditEntries(ctx, 2, 2)
	if err != nil || len(es) != 2 || es[0].Seq != 3 || es[1].PrevHash != es[0].Hash {
		t.Fatalf("entries after 2: %+v %v", es, err)
	}
	r, err := s.VerifyAudit(ctx)
	if err != nil || !r.OK || r.Entries != 6 {
		t.Errorf("verify = %+v %v", r, err)
	}
}
