package platform_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/access"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

var ctx = context.Background()

func wantAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an API error %d %s", err, status, code)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("err = %d %s (%s), want %d %s", ae.Status, ae.Code, ae.Message, status, code)
	}
}

func TestFirstStartCreatesDataDir(t *testing.T) {
	e := platformtest.Start(t)
	st, err := os.Stat(e.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o700 {
		t.Errorf("data dir mode = %o, want 700", got)
	}
	for _, f := range []string{platform.SetupLinkFile, platform.SigningKeyFile, platform.DataKeyFile,
		platform.CAKeyFile, platform.ServerKeyFile, platform.MetricsTokenFile} {
		st, err := os.Stat(filepath.Join(e.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", f, got)
		}
	}
	if !strings.HasPrefix(e.AdminToken, access.APITokenPrefix) {
		t.Errorf("admin token %q lacks prefix %q", e.AdminToken, access.APITokenPrefix)
	}
	// The pin is the SHA-256 of the CA certificate's SubjectPublicKeyInfo.
	b, err := os.ReadFile(filepath.Join(e.DataDir, platform.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Server.CAPin(), api.CAPin(ca); got != want || !strings.HasPrefix(got, "sha256:") || len(got) != 71 {
		t.Errorf("CAPin = %q, want %q", got, want)
	}
	// The first start prints the one-time setup link (and writes it 0600).
	link, err := os.ReadFile(filepath.Join(e.DataDir, platform.SetupLinkFile))
	if err != nil || !strings.HasPrefix(string(link), "https://"+e.Config.Listen+"/setup?token="+access.SetupTokenPrefix) {
		t.Fatalf("setup link = %q, %v", link, err)
	}
	if !strings.Contains(e.Logs.String(), strings.TrimSpace(string(link))) {
		t.Errorf("log does not print the setup link:\n%s", e.Logs)
	}
	// Only hashes of tokens are in the database.
	grepDB(t, e, e.AdminToken)
	grepDB(t, e, strings.TrimPrefix(strings.TrimSpace(string(link)), "https://"+e.Config.Listen+"/setup?token="))
}

func TestRestartReusesKeysAndToken(t *testing.T) {
	e := platformtest.Start(t)
	pin, signKey := e.Server.CAPin(), e.Server.SigningPublicKey()
	c := e.EnrollNew(t, "before")
	e2 := e.Restart(t)
	if e2.Server.CAPin() != pin {
		t.Errorf("CA pin changed across restart")
	}
	if !e2.Server.SigningPublicKey().Equal(signKey) {
		t.Errorf("signing key changed across restart")
	}
	if e2.AdminToken != e.AdminToken {
		t.Errorf("admin token changed across restart")
	}
	got, err := e2.Admin.Collector(ctx, c.ID)
	if err != nil {
		t.Fatalf("admin token after restart: %v", err)
	}
	if got.Name != "before" {
		t.Errorf("name = %q", got.Name)
	}
}

func TestPinnedTLS(t *testing.T) {
	e := platformtest.Start(t)
	tc, err := api.PinnedTLSConfig(e.Server.CAPin())
	if err != nil {
		t.Fatal(err)
	}
	cc := api.NewAdminClient(e.URL, e.AdminToken, api.HTTPClient(tc))
	if _, err := cc.Collectors(ctx); err != nil {
		t.Fatalf("pinned client: %v", err)
	}
	wrong, _ := api.PinnedTLSConfig("sha256:" + strings.Repeat("ab", 32))
	cc = api.NewAdminClient(e.URL, e.AdminToken, api.HTTPClient(wrong))
	if _, err := cc.Collectors(ctx); !errors.Is(err, api.ErrPinMismatch) {
		t.Fatalf("wrong pin: err = %v, want ErrPinMismatch", err)
	}
}

func TestCreateCollector(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) {
		c.PublicURL = "https://platform.example.test:8443"
		c.CollectorImage = "registry.example.test/collector:1.0"
	})
	g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "dc1 rack 4", Pool: "dc1"})
	if err != nil {
		t.Fatal(err)
	}
	if !api.ValidCollectorID(g.Collector.ID) || g.Collector.Status != api.CollectorStatusPending {
		t.Errorf("collector = %+v", g.Collector)
	}
	if !strings.HasPrefix(g.EnrollmentToken, api.EnrollmentTokenPrefix) || len(g.EnrollmentToken) < 40 {
		t.Errorf("token = %q", g.EnrollmentToken)
	}
	if d := time.Until(g.ExpiresAt); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("expires in %v, want ~24h", d)
	}
	for name, cmd := range map[string]string{"podman": g.InstallCommands.Podman, "docker": g.InstallCommands.Docker} {
		for _, want := range []string{"sudo " + name + " run --rm -i --privileged --network host",
			"-e COLLECTOR_ID=" + g.Collector.ID, "-e COLLECTOR_PLATFORM_URL=https://platform.example.test:8443",
			"-e COLLECTOR_CA_PIN=" + e.Server.CAPin(), "-v /etc/collector:/etc/collector:Z",
			"registry.example.test/collector:1.0 install"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s command %q lacks %q", name, cmd, want)
			}
		}
		if strings.Contains(cmd, g.EnrollmentToken) {
			t.Errorf("%s command carries the enrollment token", name)
		}
	}
	// Podman's socket directory, so a restarted service's new socket is seen.
	if !strings.Contains(g.InstallCommands.Podman, "-v /run/podman:/run/podman") ||
		!strings.Contains(g.InstallCommands.Docker, "-v /var/run/docker.sock:/var/run/docker.sock") {
		t.Errorf("engine sockets not mounted: %+v", g.InstallCommands)
	}
	grepDB(t, e, g.EnrollmentToken)
	list, err := e.Admin.Collectors(ctx)
	if err != nil || len(list) != 1 || list[0].ID != g.Collector.ID || list[0].Pool != "dc1" {
		t.Fatalf("list = %+v, %v", list, err)
	}
}

func TestEnrollAndStatus(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) { c.HeartbeatHistory = 5 })
	c := e.EnrollNew(t, "one")
	if !ed25519.PublicKey(c.Enrolled.PlatformSigningKey).Equal(e.Server.SigningPublicKey()) {
		t.Errorf("platform_signing_key is not the platform's key")
	}
	if c.Enrolled.HeartbeatIntervalSec != 30 || c.Enrolled.Audience != e.Server.Audience() {
		t.Errorf("enroll response = %+v", c.Enrolled)
	}
	got, _ := e.Admin.Collector(ctx, c.ID)
	if got.Status != api.CollectorStatusOffline || got.EnrolledAt == nil || got.IdentityKeyFingerprint == "" {
		t.Errorf("after enrollment: %+v", got)
	}
	hb := api.Heartbeat{Version: "1.2.3", Engine: api.Engine{Kind: "podman", Version: "4.3.1"},
		Capacity: api.Capacity{CPUs: 4, MemoryTotalBytes: 8 << 30, MemoryFreeBytes: 6 << 30}, RunningJobs: 1, RunnerState: "running"}
	for i := 0; i < 8; i++ {
		hb.RunningJobs = i
		if err := c.Client.Heartbeat(ctx, hb); err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
	}
	got, _ = e.Admin.Collector(ctx, c.ID)
	if got.Status != api.CollectorStatusActive || got.LastHeartbeat == nil || got.LastHeartbeat.RunningJobs != 7 ||
		got.LastHeartbeat.Engine.Kind != "podman" || got.LastHeartbeat.Capacity.MemoryTotalBytes != 8<<30 {
		t.Errorf("after heartbeats: %+v %+v", got, got.LastHeartbeat)
	}
	hist, err := e.Admin.Heartbeats(ctx, c.ID)
	if err != nil || len(hist) != 5 || hist[0].RunningJobs != 7 || hist[4].RunningJobs != 3 {
		t.Errorf("history (keep 5) = %d entries, %v", len(hist), err)
	}
	// Heartbeats from a collector that cannot run jobs: degraded, with why
	// (P6 item 18).
	for _, tc := range []struct {
		engineErr, runner, reason string
	}{
		{"dial unix /run/podman/podman.sock: connect: connection refused", "unknown", "container engine unreachable: dial unix"},
		{"", "exited", "runner not running (state: exited)"},
		{"", "", "runner not running"},
	} {
		hb.EngineError, hb.RunnerState = tc.engineErr, tc.runner
		if err := c.Client.Heartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
		got, _ = e.Admin.Collector(ctx, c.ID)
		if got.Status != api.CollectorStatusDegraded || !strings.Contains(got.StatusReason, tc.reason) {
			t.Errorf("engine error %q, runner %q: status %q (%q), want degraded with %q", tc.engineErr, tc.runner, got.Status, got.StatusReason, tc.reason)
		}
	}
	hb.EngineError, hb.RunnerState = "", api.RunnerRestarted
	if err := c.Client.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if got, _ = e.Admin.Collector(ctx, c.ID); got.Status != api.CollectorStatusActive || got.StatusReason != "" {
		t.Errorf("after the runner came back: %q (%q), want active", got.Status, got.StatusReason)
	}
	e.Clock.Advance(91 * time.Second) // > 3 intervals of 30 s
	got, _ = e.Admin.Collector(ctx, c.ID)
	if got.Status != api.CollectorStatusOffline {
		t.Errorf("after 91 s of silence: status %q, want offline", got.Status)
	}
}

// enrollWith tries to enroll id with tok and fresh keys.
func enrollWith(e *platformtest.Env, t *testing.T, id, tok string) error {
	key, hk := platformtest.NewKeys(t)
	cl := api.NewCollectorClient(e.URL, id, nil, "", e.HTTP)
	_, err := cl.Enroll(ctx, api.EnrollRequest{CollectorID: id, Token: tok,
		IdentityPublicKey: key.Public().(ed25519.PublicKey), HPKEPublicKey: hk.PublicKey()})
	return err
}

func TestEnrollRefused(t *testing.T) {
	e := platformtest.Start(t)
	a, _ := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "a"})
	b, _ := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "b"})
	unchanged := func(t *testing.T, id string, audit int) {
		t.Helper()
		c, err := e.Admin.Collector(ctx, id)
		if err != nil || c.Status != api.CollectorStatusPending || c.IdentityKeyFingerprint != "" {
			t.Errorf("collector changed: %+v %v", c, err)
		}
		if n := e.AuditLen(t); n != audit {
			t.Errorf("audit grew from %d to %d", audit, n)
		}
	}
	audit := e.AuditLen(t)

	t.Run("wrong collector", func(t *testing.T) {
		wantAPIError(t, enrollWith(e, t, b.Collector.ID, a.EnrollmentToken), 401, api.CodeInvalidToken)
		unchanged(t, b.Collector.ID, audit)
		unchanged(t, a.Collector.ID, audit)
	})
	t.Run("unknown token", func(t *testing.T) {
		wantAPIError(t, enrollWith(e, t, a.Collector.ID, api.EnrollmentTokenPrefix+strings.Repeat("A", 43)), 401, api.CodeInvalidToken)
		unchanged(t, a.Collector.ID, audit)
	})
	t.Run("malformed token", func(t *testing.T) {
		wantAPIError(t, enrollWith(e, t, a.Collector.ID, "not a token"), 400, api.CodeInvalidRequest)
		unchanged(t, a.Collector.ID, audit)
	})
	t.Run("malformed keys", func(t *testing.T) {
		cl := api.NewCollectorClient(e.URL, a.Collector.ID, nil, "", e.HTTP)
		_, hk := platformtest.NewKeys(t)
		_, err := cl.Enroll(ctx, api.EnrollRequest{CollectorID: a.Collector.ID, Token: a.EnrollmentToken,
			IdentityPublicKey: make([]byte, 31), HPKEPublicKey: hk.PublicKey()})
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
		_, err = cl.Enroll(ctx, api.EnrollRequest{CollectorID: a.Collector.ID, Token: a.EnrollmentToken,
			IdentityPublicKey: make([]byte, 32), HPKEPublicKey: make([]byte, 100)})
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
		unchanged(t, a.Collector.ID, audit)
	})
	t.Run("reused", func(t *testing.T) {
		if err := enrollWith(e, t, a.Collector.ID, a.EnrollmentToken); err != nil {
			t.Fatal(err)
		}
		before, _ := e.Admin.Collector(ctx, a.Collector.ID)
		audit := e.AuditLen(t)
		wantAPIError(t, enrollWith(e, t, a.Collector.ID, a.EnrollmentToken), 409, api.CodeTokenUsed)
		after, _ := e.Admin.Collector(ctx, a.Collector.ID)
		if after.IdentityKeyFingerprint != before.IdentityKeyFingerprint {
			t.Errorf("a refused enrollment replaced the keys")
		}
		if n := e.AuditLen(t); n != audit {
			t.Errorf("audit grew")
		}
	})
	t.Run("replaced", func(t *testing.T) {
		g, err := e.Admin.NewEnrollmentToken(ctx, b.Collector.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantAPIError(t, enrollWith(e, t, b.Collector.ID, b.EnrollmentToken), 401, api.CodeTokenRevoked)
		audit := e.AuditLen(t)
		unchanged(t, b.Collector.ID, audit)
		e.Clock.Advance(25 * time.Hour)
		defer e.Clock.Advance(-25 * time.Hour)
		wantAPIError(t, enrollWith(e, t, b.Collector.ID, g.EnrollmentToken), 401, api.CodeTokenExpired)
		unchanged(t, b.Collector.ID, audit)
	})
}

func TestReenrollRevokesAccess(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "re")
	if err := c.Client.Heartbeat(ctx, api.Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	tok, _ := c.Client.AccessToken(ctx)
	g, err := e.Admin.NewEnrollmentToken(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := enrollWith(e, t, c.ID, g.EnrollmentToken); err != nil {
		t.Fatal(err)
	}
	// The old access token is revoked and the old key no longer signs.
	if st, body := e.Raw(t, "POST", api.PathHeartbeat, tok, "application/json", []byte(`{}`)); st != 401 {
		t.Errorf("heartbeat with a revoked token: %d %s", st, body)
	}
	wantAPIError(t, c.Client.Heartbeat(ctx, api.Heartbeat{}), 401, api.CodeInvalidAssert)
	_, err = c.Client.ExchangeAssertion(ctx)
	wantAPIError(t, err, 401, api.CodeInvalidAssert)
}

// grepDB fails if secret occurs in the database file or its WAL.
func grepDB(t *testing.T, e *platformtest.Env, secret string) {
	t.Helper()
	for _, p := range []string{e.DBPath, e.DBPath + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s contains the secret %q", filepath.Base(p), secret)
		}
	}
}
