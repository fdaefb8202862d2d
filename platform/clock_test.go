package platform_test

import (
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestCollectorClockOffTenMinutes: a collector host whose clock is 10
// minutes off the platform's (either way) still authenticates, heartbeats
// and opens its envelopes: its client measures the platform's clock from
// the Date of the answers, signs in it, and the runner checks expiry in it.
// Without the measurement the same host is refused (the assertion's iat is
// 10 minutes off), and an envelope looks expired to a host 10 minutes
// ahead. The platform's own checks are unchanged.
func TestCollectorClockOffTenMinutes(t *testing.T) {
	for _, skew := range []time.Duration{10 * time.Minute, -10 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			e := platformtest.Start(t)
			a := e.EnrollNew(t, "skewed")
			in := newJobIntegration(t, e, "ldap", a.ID)
			e.Clock.Advance(skew) // the platform's clock moves: the host is off by -skew

			// An assertion in the host's own time is refused, as before.
			raw, err := crypto.SignAssertion(a.Key, a.ID, e.Server.Audience(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Client.Exchange(ctx, raw); api.StatusOf(err) != 401 {
				t.Fatalf("an assertion 10 minutes off: %v, want 401", err)
			}
			// The client learnt the offset from that answer; a heartbeat
			// (a fresh exchange) goes through.
			if _, err := a.Client.Beat(ctx, api.Heartbeat{Version: "1", RunnerState: api.RunnerRunning, ClockOffsetMs: skew.Milliseconds()}); err != nil {
				t.Fatalf("heartbeat from a host 10 minutes off: %v", err)
			}
			off, measured := a.Client.Clock().Offset()
			if !measured || (off-skew).Abs() > 2*time.Second {
				t.Errorf("measured offset %v (%v), want %v within 2 s", off, measured, skew)
			}
			c, err := e.Admin.Collector(ctx, a.ID)
			if err != nil || c.LastHeartbeat == nil || c.LastHeartbeat.ClockOffsetMs != skew.Milliseconds() || c.Status != api.CollectorStatusActive {
				t.Errorf("the platform's view: %+v, %v", c, err)
			}

			// A job's envelope opens in platform time.
			l := runAndLease(t, e, a, in.ID)
			if _, err := crypto.OpenEnvelope(l.Envelope, a.ID, l.JobID, a.HPKE, a.Enrolled.PlatformSigningKey, a.Client.Clock().Now()); err != nil {
				t.Errorf("envelope in platform time: %v", err)
			}
			if skew < 0 { // the host is ahead: in its own time the envelope had expired
				if _, err := crypto.OpenEnvelope(l.Envelope, a.ID, l.JobID, a.HPKE, a.Enrolled.PlatformSigningKey, time.Now()); err == nil || !strings.Contains(err.Error(), "expired") {
					t.Errorf("in host time the envelope opened (%v): the test shows nothing", err)
				}
			}
		})
	}
}
