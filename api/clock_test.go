package api

import (
	"net/http"
	"testing"
	"time"
)

// TestPlatformClockObserve: the offset is the Date's second (its middle)
// against the middle of the round trip; a change under the measurement's
// noise is not believed; a Date that does not parse changes nothing.
func TestPlatformClockObserve(t *testing.T) {
	local := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	c := &PlatformClock{local: func() time.Time { return local }}
	if off, measured := c.Offset(); off != 0 || measured {
		t.Fatalf("a new clock: %v, %v", off, measured)
	}
	date := func(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
	sent, received := local.Add(-200*time.Millisecond), local.Add(200*time.Millisecond)
	// The platform is 10 minutes ahead: its Date names 12:10:00.
	if !c.observe(date(local.Add(10*time.Minute)), sent, received) {
		t.Fatal("a 10-minute offset was not taken")
	}
	if off, _ := c.Offset(); off != 10*time.Minute+500*time.Millisecond {
		t.Errorf("offset %v, want 10m0.5s (the middle of the Date's second)", off)
	}
	if got := c.Now(); !got.Equal(local.Add(10*time.Minute + 500*time.Millisecond)) {
		t.Errorf("Now = %v", got)
	}
	// A second later by the Date: noise, kept.
	if c.observe(date(local.Add(10*time.Minute+time.Second)), sent, received) {
		t.Error("a 1 s change was believed")
	}
	// The platform's clock stepped back 5 minutes: believed.
	if !c.observe(date(local.Add(5*time.Minute)), sent, received) {
		t.Error("a 5-minute step was not taken")
	}
	if c.observe("yesterday, about noon", sent, received) {
		t.Error("a Date that does not parse changed the offset")
	}
	// In step: the first answer says so, and nothing moves.
	in := &PlatformClock{local: func() time.Time { return local }}
	if in.observe(date(local), sent, received) {
		t.Error("a clock in step moved")
	}
	if off, measured := in.Offset(); !measured || off.Abs() > time.Second {
		t.Errorf("in step: %v, %v", off, measured)
	}
}
