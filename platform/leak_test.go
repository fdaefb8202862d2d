package platform_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestServerLeavesNoGoroutine: a platform that served every kind of
// request (sign-in, a heartbeat, a job long poll parked when it stops,
// a console live stream open when it stops) and had its loops running
// (scheduler, prune, housekeeping) leaves no goroutine behind once Serve
// returned and the store closed (P7 item 4).
func TestServerLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		// The HTTP client's idle connections are the test's, closed below,
		// and their read loops end on their own a moment later.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
	e := platformtest.Start(t, func(c *platform.Config) {
		c.HousekeepingInterval = 10 * time.Millisecond
		c.Jobs.SchedulerTick = 10 * time.Millisecond
	})
	c := e.EnrollNew(t, "site")
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	in := newJobIntegration(t, e, "ldap", c.ID)
	// A long poll parked in the queue, and a live stream, when it stops.
	polled := make(chan error, 1)
	go func() {
		_, err := c.Client.Next(context.Background(), api.NextRequest{WaitSeconds: 30})
		polled <- err
	}()
	events := streamEvents(t, pageAs(t, e, e.AdminToken), "/collectors/events?ids="+c.ID)
	<-events // the stream is open
	if _, _, body := pageAs(t, e, e.AdminToken).get("/integrations/" + in.ID); len(body) == 0 {
		t.Fatal("no integration page")
	}
	// Shutdown ends the streams and polls itself: it does not wait for
	// their clients to give up (the stream's client would in 10 s).
	stopped := time.Now()
	e.Stop()
	if took := time.Since(stopped); took > 5*time.Second {
		t.Errorf("stopping took %v: something held the shutdown", took)
	}
	select {
	case <-polled: // ended by the shutdown (an error or no job)
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll outlived the server")
	}
	for range events { // the stream ends with the server
	}
	e.HTTP.CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}
