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
