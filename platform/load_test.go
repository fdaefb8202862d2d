package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/internal/testutil"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/postgres"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(env.Get(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestHeartbeatLoad simulates many collectors heartbeating against one
// platform process over loopback TLS and reports latency and the server's
// CPU time per heartbeat. It is slow, so it runs only when asked:
//
//	PLATFORM_LOAD=1 go test -run TestHeartbeatLoad -v -timeout 20m ./platform/
//
// PLATFORM_LOAD_COLLECTORS (10000) collectors each beat every
// PLATFORM_LOAD_INTERVAL seconds (30) for PLATFORM_LOAD_SECONDS (30). The
// collectors are enrolled straight through the store for speed; the server
// is the real `platform serve` binary, so its CPU is measured apart from the
// load generator's. With PLATFORM_LOAD_POSTGRES=1 the platform is two
// replicas on one PostgreSQL (internal/pgtest), each collector beating at
// one of them, and the CPU is the two servers'.
func TestHeartbeatLoad(t *testing.T) {
	if env.Get(env.PlatformLoad) == "" {
		t.Skip("set PLATFORM_LOAD=1 to run the heartbeat load test")
	}
	n := envInt(env.PlatformLoadCollectors, 10000)
	interval := time.Duration(envInt(env.PlatformLoadInterval, 30)) * time.Second
	duration := time.Duration(envInt(env.PlatformLoadSeconds, 30)) * time.Second

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	database := ""
	if env.Get(env.PlatformLoadPostgres) != "" {
		database = postgresURL(t)
	}
	start := time.Now()
	tokens := enrollDirect(t, dataDir, database, n)
	t.Logf("enrolled %d collectors through the store in %v", n, time.Since(start).Round(time.Millisecond))

	servers := []*servedPlatform{startServe(t, serveOptions{dataDir: dataDir, database: database})}
	if database != "" {
		// A second replica, with a copy of the first one's keys.
		second := filepath.Join(dir, "data2")
		if out, err := exec.Command("cp", "-a", dataDir, second).CombinedOutput(); err != nil {
			t.Fatalf("copy the data directory: %v\n%s", err, out)
		}
		servers = append(servers, startServe(t, serveOptions{dataDir: second, database: database, noAdmin: true}))
	}
	url := servers[0].URL
	serverCPU := func() time.Duration {
		var cpu time.Duration
		for _, s := range servers {
			cpu += procCPU(s.pid)
		}
		return cpu
	}
	t.Logf("%d server process(es), database %q", len(servers), redact(database))
	tc, err := api.CATLSConfig(filepath.Join(dataDir, platform.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	// HTTP/1.1 with keep-alive. By default the simulated collectors share a
	// pool of connections; PLATFORM_LOAD_CONNS=collector gives each its own
	// (10,000 TLS connections, set up during the first interval and reused
	// after), as real collectors would hold.
	newClient := func(idle int) *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc,
			MaxIdleConns: idle, MaxIdleConnsPerHost: idle, IdleConnTimeout: 2 * interval}}
	}
	clients := make([]*http.Client, n)
	perCollector := env.Get(env.PlatformLoadConns) == "collector"
	shared := newClient(2000)
	for i := range clients {
		clients[i] = shared
		if perCollector {
			clients[i] = newClient(1)
		}
	}
	t.Logf("connections: per collector = %v", perCollector)

	base := baseline(t, shared, url)
	body, _ := json.Marshal(api.Heartbeat{Version: "1.0.0", Engine: api.Engine{Kind: "podman", Version: "4.3.1"},
		Capacity: api.Capacity{CPUs: 4, MemoryTotalBytes: 8 << 30, MemoryFreeBytes: 5 << 30}, RunningJobs: 1, RunnerState: "running"})

	rate := float64(n) / interval.Seconds()
	gap := time.Duration(float64(time.Second) / rate)
	total := int(duration.Seconds() * rate)
	lat := make([]time.Duration, total)
	fails := make([]int, total)
	ph := make([]phases, total)
	var wg sync.WaitGroup
	cpu0, self0, pg0 := serverCPU(), selfCPU(), pgUsage(t, database)
	t0 := time.Now()
	for i := 0; i < total; i++ {
		due := t0.Add(time.Duration(i) * gap)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			lat[i], fails[i] = beat(clients[i%n], servers[i%n%len(servers)].URL, tokens[i%n], body, due, &ph[i])
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(t0)
	cpu, self := serverCPU()-cpu0, selfCPU()-self0
	if database != "" {
		pg := pgUsage(t, database).Sub(pg0)
		t.Logf("PostgreSQL: %.0f µs executing, %.2f statements and %.0f bytes of WAL per heartbeat",
			pg.ExecMs*1000/float64(total), float64(pg.Statements)/float64(total), float64(pg.WALBytes)/float64(total))
	}

	failed := 0
	for _, f := range fails {
		failed += f
	}
	// The first round, by 5-second windows of due time: where its tail is.
	win := int(5 * rate)
	for w := 0; w*win < min(n, total); w++ {
		logLatency(t, fmt.Sprintf("beats due %d-%d s", w*5, (w+1)*5), lat[w*win:min(n, total, (w+1)*win)])
	}
	for round := 0; total > n && round*n < total; round++ {
		logLatency(t, fmt.Sprintf("round %d (beats %d-%d)", round+1, round*n+1, min(total, (round+1)*n)), lat[round*n:min(total, (round+1)*n)])
	}
	lat = slices.Clone(lat)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	t.Logf("%d heartbeats from %d collectors (every %v) in %v: %.0f/s, %d failed",
		total, n, interval, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), failed)
	logLatency(t, "all", lat)
	t.Logf("baseline GET /healthz p50 %v: heartbeat p50 is %.1fx the baseline", base.Round(time.Microsecond),
		float64(pct(.5))/float64(base))
	t.Logf("server CPU %v = %v per heartbeat (%.1f%% of one core); load generator CPU %v = %v per heartbeat",
		cpu.Round(time.Millisecond), (cpu / time.Duration(total)).Round(time.Microsecond),
		100*cpu.Seconds()/elapsed.Seconds(), self.Round(time.Millisecond), (self / time.Duration(total)).Round(time.Microsecond))
	var hs, ws, cs []time.Duration
	for _, p := range ph {
		if p.handshake > 0 {
			hs, cs = append(hs, p.handshake), append(cs, p.connect)
		}
		ws = append(ws, p.wait)
	}
	if len(hs) > 0 {
		logLatency(t, fmt.Sprintf("of TCP connect (%d new connections)", len(cs)), cs)
		logLatency(t, "of TLS handshake", hs)
	}
	logLatency(t, "from request written to first response byte", ws)
	for i, srv := range servers {
		logServerHistogram(t, shared, srv, fmt.Sprintf("replica %d", i+1))
	}
	if failed > 0 {
		t.Errorf("%d heartbeats failed", failed)
	}
	if p99 := pct(.99); p99 > 50*time.Millisecond {
		t.Errorf("p99 %v exceeds the 50 ms goal", p99)
	}
}

// enrollDirect creates and enrolls n collectors and gives each an access
// token, straight through the store (of database, "" for the data
// directory's SQLite file).
func enrollDirect(t *testing.T, dataDir, database string, n int) []string {
	t.Helper()
	ctx := context.Background()
	cfg := platform.DefaultConfig()
	cfg.DataDir = dataDir
	var st store.Store
	if database == "" {
		_, lite := platformtest.OpenStore(t, cfg)
		st = lite
	} else {
		dd, err := platform.OpenDataDir(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		pg, err := postgres.Open(ctx, database, postgres.Options{IntegrityKey: dd.IntegrityKey, Queue: cfg.QueueConfig()})
		if err != nil {
			t.Fatal(err)
		}
		st = pg
	}
	defer st.Close()
	_, hk := platformtestKeys(t)
	now := time.Now()
	tokens := make([]string, n)
	for i := range n {
		id := fmt.Sprintf("col_%026d", i)
		id = "col_" + strings.Map(func(r rune) rune { return 'a' + (r - '0') }, id[4:]) // base32 alphabet
		tok := fmt.Sprintf("load-%d", i)
		ev := store.Event{Time: now, Actor: "load", Action: "collector.created", Target: id}
		if err := st.CreateCollector(ctx, store.Collector{ID: id, Name: id, CreatedAt: now},
			store.EnrollmentToken{Hash: crypto.HashToken(tok), CollectorID: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev); err != nil {
			t.Fatal(err)
		}
		ev.Action = "collector.enrolled"
		if err := st.Enroll(ctx, store.Enrollment{CollectorID: id, TokenHash: crypto.HashToken(tok), IdentityKey: make([]byte, 32),
			HPKEKey: hk, Now: now}, ev); err != nil {
			t.Fatal(err)
		}
		access, _ := crypto.NewToken(api.AccessTokenPrefix)
		if err := st.IssueAccessToken(ctx, "jti-"+id, now.Add(time.Minute), store.AccessToken{Hash: crypto.HashToken(access),
			CollectorID: id, ExpiresAt: now.Add(time.Hour), KeyFingerprint: crypto.Fingerprint(make([]byte, 32))}, now); err != nil {
			t.Fatal(err)
		}
		tokens[i] = access
	}
	return tokens
}

// redact drops a URL's user information, for logs.
func redact(database string) string {
	if u, err := neturl.Parse(database); err == nil {
		u.User = nil
		return u.String()
	}
	return ""
}

func platformtestKeys(t *testing.T) ([]byte, []byte) {
	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	return nil, hk.PublicKey()
}

// phases are the durations of a heartbeat's connection set-up and its wait
// for the response once the request is written.
type phases struct{ connect, handshake, wait time.Duration }

func beat(hc *http.Client, url, token string, body []byte, due time.Time, ph *phases) (time.Duration, int) {
	var connStart, tlsStart, wrote time.Time
	trace := &httptrace.ClientTrace{
		ConnectStart:         func(string, string) { connStart = time.Now() },
		ConnectDone:          func(string, string, error) { ph.connect = time.Since(connStart) },
		TLSHandshakeStart:    func() { tlsStart = time.Now() },
		TLSHandshakeDone:     func(tls.ConnectionState, error) { ph.handshake = time.Since(tlsStart) },
		WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
		GotFirstResponseByte: func() { ph.wait = time.Since(wrote) },
	}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", url+api.PathHeartbeat, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	d := time.Since(due)
	if err != nil {
		return d, 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return d, 1
	}
	return d, 0
}

// baseline is the p50 of a trivial request on the same connections.
func baseline(t *testing.T, hc *http.Client, url string) time.Duration {
	var ds []time.Duration
	for range 300 {
		s := time.Now()
		resp, err := hc.Get(url + api.PathHealthz)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ds = append(ds, time.Since(s))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// pgUsage is what PostgreSQL did so far for database (nothing for "", SQLite).
func pgUsage(tb testing.TB, database string) pgtest.Usage {
	tb.Helper()
	if database == "" {
		return pgtest.Usage{}
	}
	u, err := pgtest.UsageOf(database)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// procCPU is a process's user+system CPU time (testutil.CPUSeconds).
func procCPU(pid int) time.Duration {
	return time.Duration(testutil.CPUSeconds(pid) * float64(time.Second))
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func logLatency(t *testing.T, what string, lat []time.Duration) {
	lat = slices.Clone(lat)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)].Round(time.Microsecond) }
	t.Logf("latency %s: p50 %v  p90 %v  p99 %v  max %v", what, pct(.5), pct(.9), pct(.99), pct(1))
}

// logServerHistogram logs a server's own view of heartbeat latency (time
// in the handler, without TLS handshakes and network): the cumulative
// histogram buckets from /metrics, read with the metrics token of its
// data directory.
func logServerHistogram(t *testing.T, hc *http.Client, srv *servedPlatform, name string) {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(srv.DataDir, platform.MetricsTokenFile))
	if err != nil {
		t.Errorf("metrics token of %s: %v", name, err)
		return
	}
	req, _ := http.NewRequest("GET", srv.URL+api.PathMetrics, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("metrics of %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("metrics of %s: %s", name, resp.Status)
		return
	}
	var buckets []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "platform_http_request_duration_seconds_bucket{") &&
			strings.Contains(line, `route="POST /api/v1/collector/heartbeat"`) && strings.Contains(line, `code="204"`) {
			le := line[strings.Index(line, `le="`)+4:]
			buckets = append(buckets, "≤"+le[:strings.IndexByte(le, '"')]+"s:"+line[strings.LastIndexByte(line, ' ')+1:])
		}
	}
	if len(buckets) == 0 {
		t.Errorf("metrics of %s: no heartbeat latency histogram", name)
	}
	t.Logf("%s's heartbeat handler latency (cumulative counts): %s", name, strings.Join(buckets, " "))
}
