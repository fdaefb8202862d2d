package platform

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/console"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
)

// Backends are the platform's storage, opened by the caller (cmd/platform
// chooses them): the store, the job queue, the record store and the
// accounts. With SQLite all four live in one database file.
type Backends struct {
	Store   store.Store
	Queue   queue.Queue
	Records jobs.Records
	Access  access.Store
	// Leader runs the work one replica at a time does (the scheduler) while
	// this process holds the leadership; nil: this process is the only
	// one (SQLite), and always leads.
	Leader Leader
}

// Leader elects one of the replicas sharing a database to run a task.
type Leader interface {
	// Lead runs fn whenever this process holds the leadership of name,
	// with a context that ends when it loses it, until ctx ends.
	Lead(ctx context.Context, name string, fn func(context.Context))
}

// Server is the platform's HTTPS server.
type Server struct {
	cfg       Config
	dd        *DataDir
	st        store.Store
	leader    Leader // nil: always lead
	log       *slog.Logger
	now       func() time.Time
	publicURL *url.URL
	audience  string
	signing   *SigningRing
	keys      *crypto.KeyRing // the at-rest key ring
	cert      tls.Certificate
	certs     *certs
	metrics   *metrics
	handler   http.Handler
	jobs      *jobs.Service
	access    *access.Service
	accessCfg access.Config
	sso       *access.SSO
	console   *console.Console
	// table lists every route with its permission (Routes).
	table []RouteInfo
	// polls ends when the server shuts down, waking long polls.
	polls    context.Context
	endPolls context.CancelFunc
	// checkpointMu orders writes of the audit checkpoint file.
	checkpointMu sync.Mutex
	// images verifies integrations' images when they are saved.
	images imageChecker
}

// Option is an optional knob of New.
type Option func(*Server)

// WithClock makes the server read the time from now (tests move it forward).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// New checks cfg and returns a server on the data directory dd and the
// backends b. It writes the one-time setup link while no administrator is
// enabled (the first admin signs up through it) and, once, adopts
// the integrity rules for data written by an older version. It does not
// listen yet: see Run and Serve.
func New(ctx context.Context, cfg Config, dd *DataDir, b Backends, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b.Store == nil || b.Queue == nil || b.Records == nil || b.Access == nil {
		return nil, errors.New("platform: the store, the queue, the record store and the account store are all required")
	}
	s := &Server{cfg: cfg, dd: dd, st: b.Store, leader: b.Leader, log: log, now: time.Now,
		signing: dd.Signing, keys: dd.Keys, cert: dd.Cert}
	for _, o := range opts {
		o(s)
	}
	s.publicURL, _ = cfg.publicURL()
	s.audience = s.publicURL.String()
	if !dd.IntegrityAdopted() {
		if err := s.adoptSealedConfigs(ctx); err != nil {
			return nil, err
		}
		if err := dd.markIntegrityAdopted(); err != nil {
			return nil, fmt.Errorf("mark integrity adopted: %w", err)
		}
	}
	s.accessCfg = cfg.Access
	ak, err := accessKey(ctx, b.Store, dd.Keys)
	if err != nil {
		return nil, err
	}
	if s.access, err = access.New(cfg.Access, b.Access, dd.Keys, ak, log, s.now); err != nil {
		return nil, err
	}
	if err := s.ensureSetupLink(ctx); err != nil {
		return nil, err
	}
	s.sso = access.NewSSO(s.access, s.audience+PathSSOCallback)
	if s.console, err = console.New(console.Deps{Access: s.access, SetCookie: setCookie, ClearCookie: clearCookie,
		SessionTTL: s.accessCfg.SessionAbsolute, Log: log, SSO: func() bool { return s.sso.Enabled(context.Background()) }}); err != nil {
		return nil, err
	}
	s.certs = newCerts(cfg, s.cert, dd.CAPin, log, s.now)
	s.metrics = newMetrics(s)
	if err := s.ensureMetricsToken(ctx); err != nil {
		return nil, err
	}
	s.jobs = jobs.New(cfg.Jobs, b.Queue, b.Records, jobsDirectory{s}, dd.SigningKey, log, s.metrics.reg, jobs.WithClock(s.now),
		jobs.WithSigningKey(s.signing.Current))
	s.polls, s.endPolls = context.WithCancel(context.Background())
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP handler (without TLS), for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// CAPin returns the pin of the CA that signs the server certificate.
func (s *Server) CAPin() string { return s.certs.caPin() }

// Audience returns the audience collector assertions must carry.
func (s *Server) Audience() string { return s.audience }

// SigningPublicKey returns the platform's current job-signing public key.
func (s *Server) SigningPublicKey() ed25519.PublicKey { return s.signing.Public() }

// Run listens on cfg.Listen and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves HTTPS on ln until ctx is done, then shuts down gracefully:
// it stops accepting, lets requests in flight finish (up to
// cfg.ShutdownTimeout), waits for its background loops and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:   s.handler,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.get},
		// No whole-request ReadTimeout: each route sets its body's deadline
		// (withBodyDeadline), which scales with the body for uploads.
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnContext:       firstRequestDeadline,
	}
	s.log.Info("platform listening", "addr", ln.Addr().String(), "public_url", s.audience,
		"ca_pin", s.certs.caPin(), "ca_file", s.caFile())
	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	loops := []func(context.Context){s.pruneLoop, s.jobs.RunScheduler, s.housekeepingLoop, s.reloadOnHUP}
	if s.leader != nil {
		// One scheduler across the replicas; each replica sweeps the
		// leases too, so the expiries its Next calls make are counted.
		loops[1] = func(ctx context.Context) { s.leader.Lead(ctx, "scheduler", s.jobs.RunScheduler) }
		loops = append(loops, s.jobs.RunLeaseSweeper)
	}
	for _, loop := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); loop(bg) }()
	}
	defer func() { stopBG(); wg.Wait(); s.closeImages() }()

	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(&idleConnListener{Listener: ln, timeout: s.cfg.HeaderTimeout}, "", "") }() // certificates come from TLSConfig; HTTP/2 is on
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	s.endPolls()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("platform stopped")
	return nil
}

func (s *Server) caFile() string {
	if s.cfg.TLSCert != "" {
		return s.cfg.TLSCert
	}
	return s.cfg.DataDir + "/" + CACertFile
}

// pruneLoop drops expired tokens and jtis every minute.
func (s *Server) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.st.Prune(ctx, s.now()); err != nil && ctx.Err() == nil {
				s.log.Warn("prune expired credentials", "err", err)
			}
		}
	}
}

// dated stamps every answer's Date with the platform's clock, the one it
// checks assertions and expiries with: collectors measure it from there
// (api.PlatformClock) and sign in it.
func (s *Server) dated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
		next.ServeHTTP(w, r)
	})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	methods := map[string][]string{} // path -> allowed methods, for 405s
	add := func(perm access.Permission, pattern string, h http.Handler, opts ...routeOpt) {
		method, path, _ := strings.Cut(pattern, " ")
		ri := RouteInfo{Method: method, Path: path, Permission: perm}
		for _, o := range opts {
			o(&ri)
		}
		if ri.Permission == "" {
			panic("route " + pattern + " declares no permission")
		}
		s.table = append(s.table, ri)
		if !ri.Page { // a page's other methods get the mux's plain 405
			methods[path] = append(methods[path], method)
		}
		mux.Handle(pattern, h)
	}
	user := func(perm access.Permission, pattern string, h handlerFunc, opts ...routeOpt) {
		ri := RouteInfo{Permission: perm}
		for _, o := range opts {
			o(&ri)
		}
		add(perm, pattern, s.authorize(ri, h), opts...)
	}
	read := func(pattern string, h handlerFunc, opts ...routeOpt) { user(access.PermRead, pattern, h, opts...) }
	operate := func(pattern string, h handlerFunc, opts ...routeOpt) { user(access.PermOperate, pattern, h, opts...) }
	admin := func(pattern string, h handlerFunc, opts ...routeOpt) { user(access.PermAdmin, pattern, h, opts...) }
	public := func(pattern string, h handlerFunc) { add(access.PermPublic, pattern, s.public(h)) }
	collector := func(pattern string, h collectorHandlerFunc) { add(access.PermCollector, pattern, s.collectorOnly(h)) }

	operate("POST /api/v1/collectors", s.createCollector)
	read("GET /api/v1/collectors", s.listCollectors)
	read("GET /api/v1/collectors/{id}", s.showCollector)
	read("GET /api/v1/collectors/{id}/heartbeats", s.collectorHeartbeats)
	operate("DELETE /api/v1/collectors/{id}", s.deleteCollector, stepUp)
	operate("POST /api/v1/collectors/{id}/token", s.newEnrollmentToken, stepUp)
	operate("PUT /api/v1/collectors/{id}/pool", s.setCollectorPool)
	admin("POST "+api.PathUpgrade, s.upgradeCollectors, stepUp)

	operate("POST /api/v1/integrations", s.createIntegration)
	read("GET /api/v1/integrations", s.listIntegrations)
	read("GET /api/v1/integrations/{id}", s.showIntegration)
	operate("PATCH /api/v1/integrations/{id}", s.updateIntegration)
	operate("DELETE /api/v1/integrations/{id}", s.deleteIntegration)
	operate("POST /api/v1/integrations/{id}/assign", s.assignIntegration)

	read("GET /api/v1/audit", s.listAudit)
	read("GET /api/v1/audit/verify", s.verifyAudit)

	public("POST /api/v1/collector/enroll", s.enroll)
	public("POST /api/v1/collector/token", s.exchangeToken)
	collector("POST /api/v1/collector/heartbeat", s.heartbeat)
	collector("GET "+api.PathCollectorKeys, s.collectorKeys)
	collector("POST "+api.PathCollectorKeys, s.rotateKeys)

	collector("POST "+api.PathJobsNext, s.jobsNext)
	collector("POST "+api.PathJobRenew, s.jobRenew)
	collector("POST "+api.PathJobRunning, s.jobRunning)
	collector("POST "+api.PathJobRecords, s.jobRecords)
	collector("POST "+api.PathJobLogs, s.jobLogs)
	collector("POST "+api.PathJobFinish, s.jobFinish)
	operate("POST /api/v1/integrations/{id}/run", s.enqueueEndpoint(s.RunNowAct))
	operate("POST /api/v1/integrations/{id}/validate", s.enqueueEndpoint(s.ValidateAct))
	read("GET /api/v1/integrations/{id}/entities", s.listItems(api.KindEntity))
	read("GET /api/v1/integrations/{id}/relationships", s.listItems(api.KindRelationship))
	read("GET /api/v1/jobs", s.listJobs)
	read("GET /api/v1/jobs/{id}", s.showJob)
	read("GET /api/v1/jobs/{id}/logs", s.showJobLogs)
	operate("POST /api/v1/jobs/{id}/cancel", s.cancelJob)

	s.accessRoutes(public, user, admin)

	// The console: pages through the same permission check.
	add(access.PermPublic, "GET /static/", s.console.Static())
	for _, pg := range append(s.console.Routes(), s.pageRoutes()...) {
		ri := RouteInfo{Permission: pg.Permission, Partial: pg.Partial, StepUp: pg.StepUp}
		opts := []routeOpt{func(r *RouteInfo) { r.Partial, r.StepUp, r.Page = pg.Partial, pg.StepUp, true }}
		add(pg.Permission, pg.Pattern, s.authorizePage(ri, pg.Handler), opts...)
	}

	add(access.PermPublic, "GET /metrics", s.metricsAuth(s.metrics.handler()))
	add(access.PermPublic, "GET /healthz", http.HandlerFunc(s.healthz))

	// A known path with another method: 405 with Allow, as JSON.
	for path, ms := range methods {
		allow := strings.Join(ms, ", ")
		mux.Handle(path, s.public(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return errorf(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, allow)
		}))
	}
	mux.Handle("/", s.public(func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, api.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	// Cross-origin protection (Sec-Fetch-Site, Origin) on every
	// state-changing request: a page of another site cannot make a signed-in
	// browser act. Clients that send neither header (the CLI, collectors)
	// are not browsers and carry their credential explicitly.
	csrf := http.NewCrossOriginProtection()
	return s.metrics.instrument(markRequest(s.withBodyDeadline(s.dated(securityHeaders(csrf.Handler(mux))))))
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if _, err := s.st.Setting(r.Context(), settingMetricsTokenHash); err != nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "unavailable", "store unavailable"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
