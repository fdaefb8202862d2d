package collector_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/collector/ops"
	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestPlatformThroughProxy: behind a real proxy (tinyproxy, with
// credentials), the collector's platform client, as the daemon and runner
// build it, enrolls (the token exchange) and heartbeats through a CONNECT
// tunnel, the CA pin checked end to end; the proxy's log shows the
// CONNECTs to the platform's address. Wrong proxy credentials fail, and
// `collector doctor`'s proxy check passes with the right ones and fails,
// naming the proxy without its password, with wrong ones.
func TestPlatformThroughProxy(t *testing.T) {
	p := platformtest.Start(t)
	pu, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	platformAddr := pu.Host
	tp := testutil.StartTinyproxy(t, pu.Port(), "alice", "pr0xy-pw")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	eg := egress.Settings{Proxy: "http://alice:pr0xy-pw@" + tp.Addr}
	pin := p.Server.CAPin()
	hc, err := collector.PlatformHTTPClient(pin, p.URL, eg, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Enrollment, through the proxy.
	g, err := p.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "behind-proxy"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := config.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	cc := api.NewCollectorClient(p.URL, g.Collector.ID, keys.Identity, "", hc)
	enrolled, err := cc.Enroll(ctx, api.EnrollRequest{CollectorID: g.Collector.ID, Token: g.EnrollmentToken,
		IdentityPublicKey: keys.Identity.Public().(ed25519.PublicKey), HPKEPublicKey: keys.HPKE.PublicKey()})
	if err != nil {
		t.Fatalf("enroll through the proxy: %v", err)
	}
	afterEnroll := tp.Connects(t, platformAddr)
	if afterEnroll == 0 {
		b, _ := os.ReadFile(tp.Log)
		t.Fatalf("the enrollment did not go through the proxy: no CONNECT %s in its log:\n%s", platformAddr, b)
	}

	// A heartbeat, with the client the daemon builds from its config.
	cfg := &config.Config{CollectorID: g.Collector.ID, PlatformURL: p.URL, CAPin: pin, Audience: enrolled.Audience,
		PlatformSigningKey: enrolled.PlatformSigningKey, HeartbeatIntervalSec: 30, EnrolledAt: time.Now(),
		Proxy: eg.Proxy}
	hc2, err := collector.PlatformHTTPClient(cfg.CAPin, cfg.PlatformURL, cfg.Egress(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc = api.NewCollectorClient(cfg.PlatformURL, cfg.CollectorID, keys.Identity, cfg.Audience, hc2)
	if err := cc.Heartbeat(ctx, api.Heartbeat{Version: "test", RunnerState: api.RunnerRunning,
		Engine: api.Engine{Kind: "podman", Version: "5"}}); err != nil {
		t.Fatalf("heartbeat through the proxy: %v", err)
	}
	if n := tp.Connects(t, platformAddr); n <= afterEnroll {
		t.Fatalf("the heartbeat did not open a CONNECT to %s through the proxy (%d before, %d after)", platformAddr, afterEnroll, n)
	}

	// Wrong credentials: the proxy refuses the tunnel (no retries here).
	bad, err := egress.PlatformClient(pin, p.URL, egress.Settings{Proxy: "http://alice:wrong@" + tp.Addr})
	if err != nil {
		t.Fatal(err)
	}
	cc = api.NewCollectorClient(p.URL, cfg.CollectorID, keys.Identity, cfg.Audience, bad)
	if err := cc.Heartbeat(ctx, api.Heartbeat{Version: "test", RunnerState: api.RunnerRunning}); err == nil {
		t.Error("a heartbeat with the wrong proxy password went through")
	}

	// The doctor's proxy check, from the config dir.
	dir := t.TempDir()
	if err := config.Save(dir, cfg, keys); err != nil {
		t.Fatal(err)
	}
	rep := ops.Doctor(ctx, &ops.Env{Dir: dir, StateDir: t.TempDir(), HostRoot: t.TempDir(), EngineErr: errors.New("no engine in this test"),
		EngineSocket: "/nonexistent.sock", HTTPTimeout: 10 * time.Second})
	for _, id := range []string{"proxy", "platform-tls", "clock"} {
		c := check(rep, id)
		if c == nil || c.Result != ops.Pass {
			t.Errorf("doctor %s: %+v, want pass", id, c)
		}
	}
	cfg.Proxy = "http://alice:wrong-pw@" + tp.Addr
	if err := config.Save(dir, cfg, keys); err != nil {
		t.Fatal(err)
	}
	rep = ops.Doctor(ctx, &ops.Env{Dir: dir, StateDir: t.TempDir(), HostRoot: t.TempDir(), EngineErr: errors.New("no engine in this test"),
		EngineSocket: "/nonexistent.sock", HTTPTimeout: 10 * time.Second})
	c := check(rep, "proxy")
	if c == nil || c.Result != ops.Fail || !strings.Contains(c.Detail, tp.Addr) || strings.Contains(c.Detail+c.Fix, "wrong-pw") || c.Fix == "" {
		t.Errorf("doctor proxy with a wrong password: %+v, want fail naming %s without the password", c, tp.Addr)
	}
	if c := check(rep, "platform-tls"); c == nil || c.Result != ops.Warn {
		t.Errorf("doctor platform-tls after a failed CONNECT: %+v, want warn (not checked)", c)
	}
}

func check(rep *ops.Report, id string) *ops.Check {
	for i := range rep.Checks {
		if rep.Checks[i].ID == id {
			return &rep.Checks[i]
		}
	}
	return nil
}
