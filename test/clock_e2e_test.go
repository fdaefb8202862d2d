package test

// A collector host whose clock is 10 minutes off the platform's (air-gapped
// sites drift): it keeps authenticating, heartbeating and running jobs, in
// the platform's time, and says how far off it is.

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/env"
)

// TestHostClockTenMinutesAhead: the platform's clock is moved 10 minutes
// back, so the installed collector's host is 10 minutes ahead: in its own
// time its assertions are from the future (refused) and every envelope
// (10 minutes to live) has expired. It measures the offset from the
// platform's answers, works in platform time, reports the offset in its
// heartbeats (the platform's collector view shows it) and warns in the
// daemon's log; a job runs once and succeeds.
func TestHostClockTenMinutesAhead(t *testing.T) {
	need(t)
	p := startPlatformWith(t, world.policy, env.TestPlatformClockOffset+"=-10m")
	k := podmanKit(t)
	h := install(t, p, k)
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	var off time.Duration
	waitFor(t, "the offset in a heartbeat", 30*time.Second, func() bool {
		c := p.collector(t, h.id)
		if c.LastHeartbeat == nil {
			return false
		}
		off = time.Duration(c.LastHeartbeat.ClockOffsetMs) * time.Millisecond
		return off != 0
	})
	if (off + 10*time.Minute).Abs() > 3*time.Second {
		t.Errorf("reported offset %v, want -10m within 3 s", off)
	}
	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 3, "prefix": "skew-", "token": "e2e-skew-secret"})
	j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute)
	if j.State != api.JobSucceeded || j.Attempt != 1 {
		logs, _ := p.cli("jobs", "logs", j.ID)
		t.Fatalf("a job on a host 10 minutes ahead: %+v\n%s", j, logs)
	}
	if keys := p.entityKeys(t, id); len(keys) != 4 {
		t.Errorf("%d entities, want 4", len(keys))
	}
	// The offset is measured from Date headers (1 s resolution): shown
	// within a second of 10 minutes.
	if out, err := p.cli("collectors", "show", h.id); err != nil || !regexp.MustCompile(`\b(9m59s|10m0s|10m1s) ahead of the platform`).MatchString(out) {
		t.Errorf("collectors show does not say the host is 10 minutes ahead (%v):\n%s", err, out)
	}
	if logs, _ := k.run("logs", "collector-daemon"); !strings.Contains(logs, "this host's clock is off the platform's") {
		t.Errorf("the daemon did not warn of the offset:\n%s", logs)
	}
	t.Logf("host 10 minutes ahead: measured offset %v; job %s succeeded on attempt 1", off, j.ID)
}
