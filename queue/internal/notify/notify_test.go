package notify_test

import (
	"testing"
	"time"

	"github.com/collectorhq/collector/queue/internal/notify"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Millisecond):
		return false
	}
}

func TestNotifyWakesOnlyThatKey(t *testing.T) {
	n := notify.New()
	a1, ra1 := n.Subscribe("a")
	a2, ra2 := n.Subscribe("a")
	b, rb := n.Subscribe("b")
	defer ra1()
	defer ra2()
	defer rb()
	n.Notify("a")
	if !closed(a1) || !closed(a2) {
		t.Error("subscribers of a not woken")
	}
	if closed(b) {
		t.Error("subscriber of b woken by a")
	}
	// A later subscriber waits for the next notification.
	a3, ra3 := n.Subscribe("a")
	defer ra3()
	if closed(a3) {
		t.Error("new subscriber of a woken by an old notification")
	}
	n.Notify("a")
	if !closed(a3) {
		t.Error("second notification lost")
	}
	n.Notify("nobody") // no subscriber: no effect, no panic
}

func TestReleaseIsIdempotent(t *testing.T) {
	n := notify.New()
	_, r1 := n.Subscribe("a")
	ch, r2 := n.Subscribe("a")
	r1()
	r1() // a second release must not drop r2's subscription
	n.Notify("a")
	if !closed(ch) {
		t.Error("remaining subscriber not woken")
	}
	r2()
}

// A look that found the queue empty makes its key quiet until a Notify of
// it, a Forget or its time; a Notify during the look, or a look that found
// more, leaves it not quiet.
func TestQuiet(t *testing.T) {
	n := notify.New()
	now := time.Now()
	later := now.Add(time.Minute)
	if n.Quiet("a", now) {
		t.Fatal("quiet before any look")
	}
	n.Look("a").End(true, later)
	if !n.Quiet("a", now) || n.Quiet("b", now) {
		t.Fatal("a look that found a empty: a not quiet, or b quiet")
	}
	if n.Quiet("a", later) {
		t.Error("still quiet at its time")
	}
	n.Notify("a")
	if n.Quiet("a", now) {
		t.Error("quiet after a Notify")
	}
	// A Notify (or a Forget) during the look: what it saw is stale.
	for name, during := range map[string]func(){"notify": func() { n.Notify("a") }, "forget": n.Forget} {
		l := n.Look("a")
		during()
		l.End(true, later)
		if n.Quiet("a", now) {
			t.Errorf("quiet after a look with a %s during it", name)
		}
	}
	n.Look("a").End(true, later)
	n.Look("a").End(false, later)
	if n.Quiet("a", now) {
		t.Error("quiet after a look that found more")
	}
	n.Look("a").End(true, later)
	n.Forget()
	if n.Quiet("a", now) {
		t.Error("quiet after Forget")
	}
	l := n.Look("a")
	l.End(true, later)
	n.Notify("a")
	l.End(true, later) // a second End does nothing
	if n.Quiet("a", now) {
		t.Error("a second End made a quiet")
	}
}
