// Package platformtest starts a real platform server for tests: HTTPS on
// 127.0.0.1:0, a real SQLite file in a temporary data dir (or the
// PostgreSQL database Config.Database names, and replicas on it), its log
// captured, and a clock tests can move forward.
package platformtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/testutil"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/platform/store/sqlite"
)

// Env is a running platform and clients for it.
type Env struct {
	URL     string
	DataDir string
	DBPath  string
	Config  platform.Config
	Server  *platform.Server
	// Store is the SQLite store; nil on PostgreSQL (Config.Database a
	// postgres:// URL), where Backends are the platform's.
	Store      *sqlite.Store
	Backends   platform.Backends
	HTTP       *http.Client // trusts the platform CA
	Admin      *api.AdminClient
	AdminToken string
	Logs       *Buffer
	Clock      *Clock
	// DataKey is the platform's at-rest key (tests that attack the database
	// check what it can and cannot open).
	DataKey []byte

	stop func()
}

// Buffer collects a server's log output; safe for concurrent use.
type Buffer = testutil.Buffer

// Clock is real time plus an offset tests can advance.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// Start starts a platform with a test admin (AdminLogin) and an admin API
// token (Env.AdminToken); edit, if given, adjusts the config first. The
// server stops when the test ends.
func Start(t testing.TB, edit ...func(*platform.Config)) *Env {
	t.Helper()
	return start(t, testConfig(t, edit...), &Buffer{}, &Clock{}, "")
}

// StartEmpty starts a platform with no user at all, as a first start is:
// its setup link (Server.SetupLink) creates the first admin. Env.Admin is
// nil.
func StartEmpty(t testing.TB, edit ...func(*platform.Config)) *Env {
	t.Helper()
	return start(t, testConfig(t, edit...), &Buffer{}, &Clock{}, noAdmin)
}

// noAdmin asks start for no bootstrap admin.
const noAdmin = "-"

func testConfig(t testing.TB, edit ...func(*platform.Config)) platform.Config {
	t.Helper()
	cfg := platform.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	// A platform refuses enrollment without an image policy; tests that
	// enroll get one that refuses every image (no image is pulled here).
	cfg.ImagePolicy = []byte(`{"default":[{"type":"reject"}]}`)
	// Integrations here name images that are not in any registry; the
	// check at save is tested with a real registry (test/).
	cfg.VerifyImages = false
	// Console streams look often, so tests see changes at once.
	cfg.LiveInterval = 50 * time.Millisecond
	// Cheap password hashes: the cost of the defaults is benchmarked in
	// platform/access, not paid by every test server.
	cfg.Access.Password = access.PasswordParams{MemoryKiB: 8 << 10, Time: 1, Threads: 1, SaltBytes: 16, KeyBytes: 32}
	for _, e := range edit {
		e(&cfg)
	}
	return cfg
}

// StartReplica starts a second platform on first's PostgreSQL database
// (first must run on one), with a copy of first's data directory (the same
// keys, as replicas have), first's public URL, and first's admin token,
// log buffer and clock.
func StartReplica(t testing.TB, first *Env) *Env {
	t.Helper()
	if !first.Config.DatabaseIsPostgres() {
		t.Fatal("platformtest.StartReplica: the first platform does not run on PostgreSQL")
	}
	cfg := first.Config
	cfg.DataDir = filepath.Join(t.TempDir(), "replica")
	if cfg.PublicURL == "" {
		// Replicas share one public URL (the load balancer's): it is the
		// audience of collectors' assertions.
		cfg.PublicURL = first.URL
	}
	if err := os.CopyFS(cfg.DataDir, os.DirFS(first.DataDir)); err != nil {
		t.Fatal(err)
	}
	// CopyFS makes every file 0644; keep the modes, as `cp -a` does
	// (docs/scaling.md): the platform refuses key files others may read.
	err := filepath.WalkDir(first.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(first.DataDir, path)
		return os.Chmod(filepath.Join(cfg.DataDir, rel), fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return start(t, cfg, first.Logs, first.Clock, first.AdminToken)
}

// Restart stops the server and starts a new one on the same data dir (and
// a new port), with the same log buffer and clock.
func (e *Env) Restart(t testing.TB) *Env {
	t.Helper()
	e.Stop()
	return start(t, e.Config, e.Logs, e.Clock, e.AdminToken)
}

func start(t testing.TB, cfg platform.Config, logs *Buffer, clock *Clock, adminToken string) *Env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = ln.Addr().String()
	e := &Env{DataDir: cfg.DataDir, DBPath: cfg.DatabasePath(), Config: cfg, Logs: logs, Clock: clock, AdminToken: adminToken}
	log := slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	dd, err := platform.OpenDataDir(cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e.DataKey = dd.DataKey
	var closeStore func() error
	if cfg.DatabaseIsPostgres() {
		pg, err := postgres.Open(ctx, cfg.Database, postgres.Options{IntegrityKey: dd.IntegrityKey, PreviousIntegrityKeys: dd.PreviousIntegrityKeys,
			Queue: cfg.QueueConfig(), Now: e.Clock.Now})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		e.Backends = platform.Backends{Store: pg, Queue: pg.Queue(), Records: pg.Records(), Access: pg, Leader: pg.Leader(log)}
		closeStore = pg.Close
	} else {
		if e.Store, err = sqlite.Open(ctx, e.DBPath, sqlite.Options{IntegrityKey: dd.IntegrityKey, PreviousIntegrityKeys: dd.PreviousIntegrityKeys,
			Queue: cfg.QueueConfig(), AdoptIntegrity: !dd.IntegrityAdopted(), Now: e.Clock.Now}); err != nil {
			cancel()
			t.Fatal(err)
		}
		e.Backends = platform.Backends{Store: e.Store, Queue: e.Store.Queue(), Records: e.Store.Records(), Access: e.Store}
		closeStore = e.Store.Close
	}
	if e.Server, err = platform.New(ctx, cfg, dd, e.Backends, log, platform.WithClock(e.Clock.Now)); err != nil {
		cancel()
		closeStore()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Server.Serve(ctx, ln) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			if e.HTTP != nil {
				// Idle HTTP/2 connections would hold the graceful shutdown
				// for the GOAWAY timeout (1 s).
				e.HTTP.CloseIdleConnections()
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server stopped with: %v", err)
			}
			closeStore()
		})
	}
	t.Cleanup(e.stop)
	switch e.AdminToken {
	case noAdmin:
		e.AdminToken = ""
	case "":
		e.AdminToken = bootstrapAdmin(t, cfg, dd, e.Backends.Access, log, e.Clock.Now)
	}
	e.finishClients(t)
	if e.AdminToken == "" {
		e.Admin = nil
	}
	return e
}

// AdminLogin and AdminPassword are the test admin's credentials (it has
// no second factor: sessions of it wait for an enrolment).
const (
	AdminLogin    = "test-admin"
	AdminPassword = "test admin passphrase 2026"
)

// bootstrapAdmin creates the test admin through the host-side path (as
// `platform users create` does) and an admin API token for the tests'
// clients.
func bootstrapAdmin(t testing.TB, cfg platform.Config, dd *platform.DataDir, st access.Store, log *slog.Logger, now func() time.Time) string {
	t.Helper()
	svc, err := platform.OpenAccess(cfg, dd, st, log, now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := svc.CreateUser(ctx, access.CreateUserRequest{Login: AdminLogin, DisplayName: "Test Admin", Password: AdminPassword, Role: access.RoleAdmin},
		"test-harness", access.Meta{Source: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := svc.CreateTokenFor(ctx, u, "test-harness", access.Meta{Source: "127.0.0.1"}, access.CreateTokenRequest{Name: "tests", Role: access.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *Env) finishClients(t testing.TB) {
	t.Helper()
	tc, err := api.CATLSConfig(filepath.Join(e.DataDir, platform.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	e.HTTP = api.HTTPClient(tc)
	e.URL = "https://" + e.Config.Listen
	e.Admin = api.NewAdminClient(e.URL, e.AdminToken, e.HTTP)
}

// Stop stops the server now (it also stops when the test ends).
func (e *Env) Stop() { e.stop() }

// Collector is an enrolled collector with its keys and client.
type Collector struct {
	ID       string
	Key      ed25519.PrivateKey
	HPKE     *crypto.HPKEKey
	Client   *api.CollectorClient
	Enrolled *api.EnrollResponse
}

// NewKeys returns a fresh identity key and HPKE key.
func NewKeys(t testing.TB) (ed25519.PrivateKey, *crypto.HPKEKey) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	return key, hk
}

// EnrollNew creates a collector through the admin API and enrolls it.
func (e *Env) EnrollNew(t testing.TB, name string) *Collector {
	t.Helper()
	ctx := context.Background()
	g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: name})
	if err != nil {
		t.Fatalf("create collector: %v", err)
	}
	return e.Enroll(t, g)
}

// Enroll enrolls the collector of an enrollment grant with new keys.
func (e *Env) Enroll(t testing.TB, g *api.EnrollmentGrant) *Collector {
	t.Helper()
	ctx := context.Background()
	key, hk := NewKeys(t)
	c := &Collector{ID: g.Collector.ID, Key: key, HPKE: hk}
	c.Client = api.NewCollectorClient(e.URL, c.ID, key, "", e.HTTP)
	var err error
	c.Enrolled, err = c.Client.Enroll(ctx, api.EnrollRequest{CollectorID: c.ID, Token: g.EnrollmentToken,
		IdentityPublicKey: key.Public().(ed25519.PublicKey), HPKEPublicKey: hk.PublicKey()})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	c.Client.SetAudience(c.Enrolled.Audience)
	return c
}

// Heartbeat reports the collector healthy: its runner running.
func (c *Collector) Heartbeat(ctx context.Context) error {
	return c.Client.Heartbeat(ctx, api.Heartbeat{Version: "test", RunnerState: api.RunnerRunning,
		Engine: api.Engine{Kind: "podman", Version: "4.3.1"}, Capacity: api.Capacity{CPUs: 2, MemoryTotalBytes: 8 << 30, MemoryFreeBytes: 4 << 30}})
}

// Raw sends a request as is and returns the status and body: for bad-input
// tests. bearer may be ""; contentType "" sends none.
func (e *Env) Raw(t testing.TB, method, path, bearer, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// AuditLen returns the number of audit entries.
func (e *Env) AuditLen(t testing.TB) int {
	t.Helper()
	l, err := e.Admin.Audit(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Entries)
}

// OpenStore opens (creating it if needed) the data directory of cfg and its
// SQLite database as `platform serve` would, for tests that write straight
// to the store (load tests, attack tests). Close it before a server opens
// the same file.
func OpenStore(t testing.TB, cfg platform.Config) (*platform.DataDir, *sqlite.Store) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dd, err := platform.OpenDataDir(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), cfg.DatabasePath(), sqlite.Options{IntegrityKey: dd.IntegrityKey, PreviousIntegrityKeys: dd.PreviousIntegrityKeys, Queue: cfg.QueueConfig(),
		AdoptIntegrity: !dd.IntegrityAdopted()})
	if err != nil {
		t.Fatal(err)
	}
	return dd, st
}
