package podman

import (
	"context"
	"testing"
	"time"
)

// lateCtx is a context whose deadline has passed but whose timer has not
// fired yet: what a call's own context, on a timer of its own, can see for
// a moment.
type lateCtx struct{ context.Context }

func (lateCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }
func (lateCtx) Err() error                  { return nil }

// TestEnded: a follow cut at its context's deadline ended with the
// context, even when the call's timer fired first (the conformance suite's
// ReadLogs failed once so on a loaded machine).
func TestEnded(t *testing.T) {
	if !ended(lateCtx{context.Background()}) {
		t.Error("a context past its deadline did not end")
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if !ended(canceled) {
		t.Error("a canceled context did not end")
	}
	live, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	if ended(live) || ended(context.Background()) {
		t.Error("a live context ended")
	}
}
