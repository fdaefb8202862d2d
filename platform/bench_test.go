package platform_test

import (
	"net/http"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/platformtest"
)

// BenchmarkHeartbeat measures one heartbeat over loopback TLS (keep-alive),
// next to its baseline, a GET /healthz on the same connection.
func BenchmarkHeartbeat(b *testing.B) {
	e := platformtest.Start(b)
	c := e.EnrollNew(b, "bench")
	hb := api.Heartbeat{Version: "1.0.0", Engine: api.Engine{Kind: "podman", Version: "4.3.1"},
		Capacity: api.Capacity{CPUs: 4, MemoryTotalBytes: 8 << 30, MemoryFreeBytes: 5 << 30}, RunningJobs: 1, RunnerState: "running"}
	if err := c.Client.Heartbeat(ctx, hb); err != nil {
		b.Fatal(err)
	}
	b.Run("baseline=healthz", func(b *testing.B) {
		for b.Loop() {
			resp, err := e.HTTP.Get(e.URL + api.PathHealthz)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
	b.Run("heartbeat", func(b *testing.B) {
		for b.Loop() {
			if err := c.Client.Heartbeat(ctx, hb); err != nil {
				b.Fatal(err)
			}
		}
	})
}
