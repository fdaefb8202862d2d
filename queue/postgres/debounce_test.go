package postgres

import (
	"slices"
	"testing"
	"time"
)

// An enqueue carries its own NOTIFY unless the process sent one less than
// notifyEvery ago, whatever the key: the window is the process's, so
// that the enqueues of a busy window share one NOTIFY. The pending keys
// go out together at the window's end, which counts as a send.
func TestDebouncerWindow(t *testing.T) {
	d := newDebouncer()
	t0 := time.Unix(1000, 0)
	at := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(notifyEvery))) }
	steps := []struct {
		at   time.Time
		want bool
	}{
		{at(0), true},
		{at(0.5), false}, // within the window
		{at(0.9), false}, // within it, whatever the key
		{at(1), true},    // the window has passed
	}
	for i, s := range steps {
		if got := d.claim(s.at); got != s.want {
			t.Fatalf("step %d: claim at %v = %v, want %v", i, s.at.Sub(t0), got, s.want)
		}
	}
	if got := d.due(); !got.Equal(at(2)) {
		t.Fatalf("due = %v after a send at 1 window, want 2 windows", got.Sub(t0))
	}
	d.pend("c:a")
	d.pend("c:b")
	d.pend("c:a")
	got := d.take(at(2))
	slices.Sort(got)
	if !slices.Equal(got, []string{"c:a", "c:b"}) {
		t.Fatalf("take = %q, want [c:a c:b], each once", got)
	}
	if d.claim(at(2.5)) {
		t.Fatal("claim just after a flush carried a NOTIFY of its own")
	}
	if got := d.take(at(3)); len(got) != 0 {
		t.Fatalf("take with nothing pending = %q", got)
	}
	if !d.claim(at(3.5)) {
		t.Fatal("claim a window after the flush did not carry a NOTIFY")
	}
}
