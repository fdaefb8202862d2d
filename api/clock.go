package api

import (
	"net/http"
	"sync"
	"time"
)

// PlatformClock is the platform's time as a collector sees it: the host's
// clock plus an offset measured from the Date of the platform's answers.
// Those come over the pinned TLS connection, so no one on the way sets
// them. A collector signs its assertions and checks envelope expiry in
// platform time, so a host clock minutes off (air-gapped sites drift)
// still authenticates; replay protection (jti, short lifetimes) is the
// platform's, in its own time, and unchanged.
type PlatformClock struct {
	local func() time.Time

	mu       sync.Mutex
	offset   time.Duration
	measured bool
}

// NewPlatformClock returns a clock with no offset until an answer is seen.
func NewPlatformClock() *PlatformClock { return &PlatformClock{local: time.Now} }

// Now is the platform's time: the host's clock plus the offset.
func (c *PlatformClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local().Add(c.offset)
}

// Offset is the platform's clock minus the host's, as last measured (to
// about a second: Date has whole seconds), and whether any answer was seen.
func (c *PlatformClock) Offset() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset, c.measured
}

// offsetJitter is the change of the measured offset that is believed: a
// Date has whole seconds, and the answer took its round trip, so a smaller
// change is the measurement's own noise.
const offsetJitter = 1500 * time.Millisecond

// observe takes the Date of an answer to a request sent at sent and
// answered at received (host times), and reports whether the offset moved.
// The platform stamped the Date somewhere in [sent, received], within the
// second it names: the estimate is the middle of each.
func (c *PlatformClock) observe(date string, sent, received time.Time) bool {
	d, err := http.ParseTime(date)
	if err != nil {
		return false
	}
	mid := sent.Add(received.Sub(sent) / 2)
	est := d.Add(500 * time.Millisecond).Sub(mid).Round(100 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.measured = true
	if (est - c.offset).Abs() < offsetJitter {
		return false
	}
	c.offset = est
	return true
}

// clockTransport measures the platform's clock on every answer.
type clockTransport struct {
	base  http.RoundTripper
	clock *PlatformClock
}

func (t clockTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := t.clock.local()
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		t.clock.observe(resp.Header.Get("Date"), sent, t.clock.local())
	}
	return resp, err
}

// watchClock returns a copy of hc whose answers set clock.
func watchClock(hc *http.Client, clock *PlatformClock) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	cp := *hc
	base := cp.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cp.Transport = clockTransport{base: base, clock: clock}
	return &cp
}
