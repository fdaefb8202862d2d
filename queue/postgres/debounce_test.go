package postgres

import (
	"slices"
	"testing"
	"time"
)

// An enqueue carries its key's NOTIFY unless one did less than
// notifyEvery ago; a pending key goes out with the next flush, which
// counts as a send.
func TestDebouncerWindow(t *testing.T) {
	d := newDebouncer()
	t0 := time.Unix(1000, 0)
	at := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(notifyEvery))) }
	steps := []struct {
		key  string
		at   time.Time
		want bool
	}{
		{"c:a", at(0), true},
		{"c:a", at(0.5), false}, // within the window
		{"c:b", at(0.5), true},  // another key
		{"c:a", at(1), true},    // the window has passed
	}
	for i, s := range steps {
		if got := d.claim(s.key, s.at); got != s.want {
			t.Fatalf("step %d: claim(%s) = %v, want %v", i, s.key, got, s.want)
		}
	}
	d.pend("c:a")
	d.pend("c:a")
	if got := d.take(at(1.5)); !slices.Equal(got, []string{"c:a"}) {
		t.Fatalf("take = %q, want [c:a] once", got)
	}
	if d.claim("c:a", at(2)) {
		t.Fatal("claim just after a flush of the key carried a NOTIFY of its own")
	}
	if got := d.take(at(3)); len(got) != 0 {
		t.Fatalf("take with nothing pending = %q", got)
	}
	if !d.claim("c:a", at(3)) {
		t.Fatal("claim long after the flush did not carry a NOTIFY")
	}
}
