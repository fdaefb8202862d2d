package platform_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/platform"
)

// TestSlowClients: the real `platform serve` holds 2,000 idle TCP
// connections, 200 slowloris clients (headers a byte a second), 100 slow
// bodies (a few bytes a second) and 1,000 long polls at once: every other
// collector's heartbeat is answered, every long poll ends as it should,
// the server's memory stays bounded, and it closes the idle and slowloris
// connections after its header timeout. The heartbeats' latency is
// logged against a baseline taken just before, and bounded (99% within
// 50 ms by the server's own count, or no more over 50 ms than twice the
// baseline's share plus 1%; the client's p99 under 50 ms or twice its
// baseline, without the race detector) when PLATFORM_LOAD=1 gives the
// machine to this test alone. The server's memory
// stays bounded, and it closes the idle and slowloris connections after
// its header timeout (10 s).
func TestSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts the platform binary and 3,300 connections")
	}
	const (
		idle, slowHeaders, slowBodies, polls, beaters = 2000, 200, 100, 1000, 20
	)
	dataDir := filepath.Join(t.TempDir(), "data")
	tokens := enrollDirect(t, dataDir, "", polls+beaters)
	srv := startPlatformServe(t, dataDir, "--metrics-public")
	addr := strings.TrimPrefix(srv.URL, "https://")
	tc, err := api.CATLSConfig(filepath.Join(dataDir, platform.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	// HTTP/1.1, a connection each: as collectors hold them.
	h1 := func(timeout time.Duration) *http.Client {
		return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 1,
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	}
	body, _ := json.Marshal(api.Heartbeat{Version: "1.0.0", Engine: api.Engine{Kind: "podman", Version: "4.3.1"},
		Capacity: api.Capacity{CPUs: 2, MemoryTotalBytes: 8 << 30, MemoryFreeBytes: 4 << 30}, RunnerState: api.RunnerRunning})
	beatClients := make([]*http.Client, beaters)
	for i := range beatClients {
		beatClients[i] = h1(10 * time.Second)
	}
	// beatFor has the beaters heartbeat every 100 ms for d and returns the
	// latencies; a failed beat fails the test.
	beatFor := func(d time.Duration) []time.Duration {
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		for i := range beaters {
			wg.Go(func() {
				for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
					var ph phases
					l, failed := beat(beatClients[i], srv.URL, tokens[polls+i], body, time.Now(), &ph)
					if failed != 0 {
						t.Errorf("a heartbeat failed under the slow clients")
						return
					}
					mu.Lock()
					lat = append(lat, l)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(lat)
		return lat
	}
	p99 := func(lat []time.Duration) time.Duration { return lat[len(lat)*99/100] }
	beatFor(time.Second) // connections up
	underB, allB := heartbeatsUnder(t, srv.HTTP, srv.URL, "0.05")
	base := beatFor(5 * time.Second)
	rss0 := procStatusKiB(t, srv.pid, "VmRSS")
	under0, all0 := heartbeatsUnder(t, srv.HTTP, srv.URL, "0.05")

	// The load.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	started := time.Now()
	for range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection: %v", err)
		}
		conns = append(conns, c)
	}
	var slow []*tls.Conn
	for i := range slowHeaders + slowBodies {
		c, err := tls.Dial("tcp", addr, tc)
		if err != nil {
			t.Fatalf("slow client: %v", err)
		}
		conns, slow = append(conns, c), append(slow, c)
		if i < slowHeaders {
			io.WriteString(c, "POST "+api.PathHeartbeat+" HTTP/1.1\r\nHost: platform\r\nX-Slow: ")
		} else {
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: platform\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
				api.PathHeartbeat, tokens[polls+i%beaters], 1<<20)
		}
	}
	stopDrip := make(chan struct{})
	var drips sync.WaitGroup
	drips.Go(func() {
		for tick := time.NewTicker(time.Second); ; {
			select {
			case <-stopDrip:
				tick.Stop()
				return
			case <-tick.C:
				for _, c := range slow {
					c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					c.Write([]byte("a"))
				}
			}
		}
	})
	defer func() { close(stopDrip); drips.Wait() }()
	pollClient := h1(time.Minute)
	pollClient.Transport.(*http.Transport).MaxConnsPerHost = 0
	pollClient.Transport.(*http.Transport).MaxIdleConnsPerHost = polls
	pollDone := make(chan error, polls)
	pollBody, _ := json.Marshal(api.NextRequest{WaitSeconds: 25})
	for i := range polls {
		go func() {
			var resp *http.Response
			var err error
			// A connection this (loaded) process did not use within the
			// header timeout is closed by the server, as a slow client's
			// is: ask again once.
			for try := 0; try < 2; try++ {
				req, _ := http.NewRequest("POST", srv.URL+api.PathJobsNext, bytes.NewReader(pollBody))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tokens[i])
				if resp, err = pollClient.Do(req); err == nil {
					break
				}
			}
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					err = fmt.Errorf("a long poll answered %d", resp.StatusCode)
				}
			}
			pollDone <- err
		}()
	}
	time.Sleep(2 * time.Second) // the polls are waiting
	setup := time.Since(started)
	loaded := beatFor(5 * time.Second)
	rss1 := procStatusKiB(t, srv.pid, "VmRSS")
	under1, all1 := heartbeatsUnder(t, srv.HTTP, srv.URL, "0.05")
	limit := max(50*time.Millisecond, 2*p99(base))
	t.Logf("heartbeats: p50 %v, p99 %v before; p50 %v, p99 %v (%d beats) beside %d idle connections, %d slowloris, %d slow bodies and %d long polls (set up in %v); bound %v",
		base[len(base)/2].Round(time.Microsecond), p99(base).Round(time.Microsecond), loaded[len(loaded)/2].Round(time.Microsecond),
		p99(loaded).Round(time.Microsecond), len(loaded), idle, slowHeaders, slowBodies, polls, setup.Round(time.Millisecond), limit)
	t.Logf("server VmRSS: %.1f MiB before, %.1f MiB under the load (%.1f KiB per held connection)",
		float64(rss0)/1024, float64(rss1)/1024, float64(rss1-rss0)/float64(idle+slowHeaders+slowBodies+polls))
	// The bound is on the server's own count of its heartbeat answers
	// under 50 ms; the client's figures beside it also carry this test
	// process's own scheduling (slow under the race detector).
	// At least 99% within 50 ms; on a machine busy with other tests (CI
	// runs packages side by side) the share over 50 ms may be up to twice
	// the baseline's, measured just before in the same run, plus 1%.
	slowShare := func(fast, all int64) float64 { return 1 - float64(fast)/float64(max(all, 1)) }
	served, fast := all1-all0, under1-under0
	slowBase, slowLoaded := slowShare(under0-underB, all0-allB), slowShare(fast, served)
	allowed := max(0.01, 2*slowBase+0.01)
	t.Logf("server side: %d of %d heartbeats answered within 50 ms under the load (%.2f%% slower), %.2f%% slower before it; allowed %.2f%%",
		fast, served, 100*slowLoaded, 100*slowBase, 100*allowed)
	if served == 0 || served < int64(len(loaded)) {
		t.Errorf("the server counted %d heartbeats under the load, the clients sent %d", served, len(loaded))
	}
	// The latency bound is a performance claim: checked when the machine
	// is the test's alone (PLATFORM_LOAD=1, as the heartbeat load test),
	// not while CI runs other packages beside it; the figures are logged
	// either way.
	if env.Get(env.PlatformLoad) != "" {
		if slowLoaded > allowed {
			t.Errorf("server side, %.2f%% of the heartbeats took over 50 ms beside the slow clients, want at most %.2f%%", 100*slowLoaded, 100*allowed)
		}
		if !raceEnabled && p99(loaded) > limit {
			t.Errorf("heartbeat p99 %v beside the slow clients (client side), want at most %v", p99(loaded), limit)
		}
	}
	if rss1 > 512<<10 {
		t.Errorf("server VmRSS %d KiB under the load, want under 512 MiB", rss1)
	}
	// The server closes what sends no complete request header in time:
	// the idle connections and the slowloris ones.
	closedBy := func(c net.Conn, by time.Time) bool {
		c.SetReadDeadline(by)
		_, err := bufio.NewReader(c).ReadByte()
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	deadline := started.Add(10*time.Second + 15*time.Second)
	for i, c := range []net.Conn{conns[0], conns[idle/2], conns[idle-1], slow[0], slow[slowHeaders-1]} {
		if !closedBy(c, deadline) {
			t.Errorf("connection %d (idle or slowloris) still open 25 s after it was made", i)
		}
	}
	for range polls {
		if err := <-pollDone; err != nil {
			t.Errorf("long poll: %v", err)
			break
		}
	}
}

// heartbeatsUnder reads the platform's metrics: how many heartbeats it
// answered (204) within le seconds (a bucket of its histogram), and in all.
func heartbeatsUnder(t *testing.T, hc *http.Client, url, le string) (under, all int64) {
	t.Helper()
	resp, err := hc.Get(url + api.PathMetrics)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `route="POST /api/v1/collector/heartbeat"`) || !strings.Contains(line, `code="204"`) {
			continue
		}
		var n int64
		fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%d", &n)
		switch {
		case strings.HasPrefix(line, "platform_http_request_duration_seconds_bucket{") && strings.Contains(line, `le="`+le+`"`):
			under = n
		case strings.HasPrefix(line, "platform_http_request_duration_seconds_count{"):
			all = n
		}
	}
	return under, all
}
