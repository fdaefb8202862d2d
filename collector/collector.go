// Package collector wires the collector's roles (installer, daemon,
// runner) from its config dir, its engine and the platform client: the
// command line calls one function here per role.
package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/daemon"
	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/collector/health"
	"github.com/collectorhq/collector/collector/host"
	"github.com/collectorhq/collector/collector/housekeeping"
	"github.com/collectorhq/collector/collector/joblogs"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/egressconf"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/selinux"
	"github.com/collectorhq/collector/trust"
)

// Images verifies and pulls images by digest.
type Images interface {
	VerifyAndPull(ctx context.Context, ref string) (string, error)
}

// ImagesFunc builds the verifier for a policy.json.
type ImagesFunc func(ImagesConfig) (Images, error)

// FetchDir, under the state dir, holds the archives of the images the
// runner fetches through its proxy or mirrors while it loads them.
const FetchDir = "fetch"

// Env is what every role shares.
type Env struct {
	Dir       string // /etc/collector
	Engine    engine.Engine
	Log       *slog.Logger
	NewImages ImagesFunc
	// HealthFile overrides where the role keeps its health status.
	HealthFile string
}

// PlatformHTTPClient returns an HTTP client that trusts only the CA with
// the given pin and retries transient failures with backoff. With a proxy
// in eg, the platform is reached through it (a CONNECT tunnel: the pin
// holds end to end) unless the no-proxy list names the platform's host.
func PlatformHTTPClient(pin, platformURL string, eg egress.Settings, log *slog.Logger) (*http.Client, error) {
	hc, err := egress.PlatformClient(pin, platformURL, eg)
	if err != nil {
		return nil, err
	}
	return retrying(hc, log), nil
}

// platformHTTPClientPins is PlatformHTTPClient with the CA pins read at
// each handshake: the daemon's and runner's, which follow a rotation of
// the platform's CA.
func platformHTTPClientPins(pins func() []string, platformURL string, eg egress.Settings, log *slog.Logger) (*http.Client, error) {
	hc, err := egress.PlatformClientPins(pins, platformURL, eg)
	if err != nil {
		return nil, err
	}
	return retrying(hc, log), nil
}

// retrying wraps hc in the retries of every call to the platform.
func retrying(hc *http.Client, log *slog.Logger) *http.Client {
	rc := retryablehttp.NewClient()
	rc.HTTPClient = hc
	rc.RetryWaitMin = 500 * time.Millisecond
	rc.RetryWaitMax = 15 * time.Second
	rc.RetryMax = 6
	rc.CheckRetry = retryWithin
	// A call that still fails after its retries returns the platform's
	// last answer (its status and reason), not a bare "giving up".
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.Logger = nil
	if log != nil {
		rc.RequestLogHook = func(_ retryablehttp.Logger, r *http.Request, attempt int) {
			if attempt > 0 {
				log.Warn("retrying platform call", "method", r.Method, "path", r.URL.Path, "attempt", attempt)
			}
		}
	}
	return rc.StandardClient()
}

// retryWithin is retryablehttp's default policy, except that an answer
// that says when to come back (Retry-After: a full disk, a busy platform)
// is returned at once with its reason, for the caller's own loop to retry
// on its schedule: sleeping it out here, under the call's deadline, would
// hide the reason behind "context deadline exceeded", and stack a second
// backoff on the caller's.
func retryWithin(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, perr := retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	if retry && resp != nil && resp.Header.Get("Retry-After") != "" {
		return false, nil
	}
	return retry, perr
}

// conn is what a role talks to the platform with.
type conn struct {
	cfg  *config.Config
	ring *config.KeyRing
	c    *api.CollectorClient
	// platformKeys is the platform's keys and CA pins the collector
	// accepts, pinned in the state dir; its CA pins are read at each TLS
	// handshake of c (docs/auth.md, "Rotating the platform CA").
	platformKeys *config.PlatformKeys
}

// client loads the config and keys and returns the platform client,
// which signs with the identity key on disk at each exchange (a key
// rotation replaces it). crash, in a test image, ends the process once at
// "token": when the platform has issued an access token, before it is
// read.
func (e Env) client(crash func(string) bool) (*conn, error) {
	cfg, keys, err := config.Load(e.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := api.PinnedTLSConfig(cfg.CAPin); err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	pk, err := config.NewPlatformKeys(cfg.StateDir, cfg.PlatformSigningKey, cfg.CAPin, time.Now)
	if err != nil {
		return nil, err
	}
	hc, err := platformHTTPClientPins(pk.CAPins, cfg.PlatformURL, cfg.Egress(), e.Log)
	if err != nil {
		return nil, err
	}
	if crash != nil {
		hc.Transport = crashAfterToken{rt: hc.Transport, crash: crash}
	}
	ring := config.NewKeyRing(e.Dir, keys)
	c := api.NewCollectorClient(cfg.PlatformURL, cfg.CollectorID, keys.Identity, cfg.Audience, hc)
	c.SetKeySource(ring.Identities)
	// The graces end in the platform's time, as the client measures it.
	pk.SetClock(c.Clock().Now)
	return &conn{cfg: cfg, ring: ring, c: c, platformKeys: pk}, nil
}

// RunDaemon runs the daemon role until ctx ends.
func RunDaemon(ctx context.Context, e Env) error {
	pc, err := e.client(e.crashAt("daemon"))
	if err != nil {
		return err
	}
	cfg, c := pc.cfg, pc.c
	e.Log.Info("daemon starting", "collector", cfg.CollectorID, "platform", cfg.PlatformURL)
	d := daemon.New(cfg, e.Engine, c, e.Log)
	d.PinPlatformKeys = pc.platformKeys.Apply
	d.HealthFile = e.healthFile()
	d.Clock = c.Clock()
	if images, err := e.images(cfg, ""); err != nil {
		e.Log.Warn("no upgrades: the image verifier cannot start", "err", err)
	} else {
		d.Upgrades = &daemon.Upgrades{Engine: e.Engine, Images: images,
			SuccessorImage: env.Get(daemon.SuccessorEnv), Window: cfg.UpgradeWindow()}
		if s := env.Get(daemon.StepsEnv); s != "" {
			d.Upgrades.Steps = strings.Split(s, ",")
		}
		d.Upgrades.CrashAt = e.crashAt("daemon")
	}
	defer releaseStartup()()
	return d.Run(ctx)
}

// releaseStartup hands the memory the process's start used and no longer
// needs back to the host, now and once the first calls are made: the
// packages' init (schemas, protobuf descriptors) and the first TLS
// handshakes leave megabytes of garbage that the runtime would otherwise
// return only slowly, on a collector that idles for hours. The returned
// func stops the later release.
func releaseStartup() func() {
	debug.FreeOSMemory()
	t := time.AfterFunc(startupSettle, debug.FreeOSMemory)
	return func() { t.Stop() }
}

// startupSettle is when the start's first calls are over.
const startupSettle = 3 * time.Second

// crashAt is a test image's crash (env.TestCrashAt, a comma-separated
// list of steps, "runner-finished" naming the runner's step "finished"):
// the role's process exits at one of its steps, without a word to anyone,
// once. The runner marks the crash in its state dir; the daemon has no
// writable directory that outlives a restart, so its marker is the
// engine's restart of its container (nothing else restarts the daemon,
// while the daemon itself starts a stopped runner, which the engine does
// not count). nil outside test images.
func (e Env) crashAt(role string) func(string) bool {
	steps := crashSteps(env.Get(env.TestCrashAt), role)
	if len(steps) == 0 {
		return nil
	}
	return func(at string) bool {
		if !steps[at] {
			return false
		}
		cfg, _, err := config.Load(e.Dir)
		if err != nil {
			return false
		}
		if role == "runner" {
			marker := filepath.Join(cfg.StateDir, "test-crash-"+at)
			f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return false // crashed here before, or no state dir
			}
			f.Close()
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if c, err := e.Engine.InspectContainer(ctx, cfg.DaemonName()); err != nil || c.RestartCount > 0 {
				return false
			}
		}
		e.Log.Warn("test crash: exiting", "role", role, "step", at, "env", env.TestCrashAt)
		os.Exit(137)
		return true
	}
}

// crashSteps are role's steps in a TestCrashAt list.
func crashSteps(list, role string) map[string]bool {
	steps := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if r, step, ok := strings.Cut(s, "-"); ok && (r == "daemon" || r == "runner") {
				if r == role {
					steps[step] = true
				}
			} else if role == "daemon" { // the upgrade's steps: "pulled", ...
				steps[s] = true
			}
		}
	}
	return steps
}

// crashAfterToken ends a test image's process (crash "token") once the
// platform answered an exchange with a token: the assertion is spent, the
// token never used.
type crashAfterToken struct {
	rt    http.RoundTripper
	crash func(string) bool
}

func (t crashAfterToken) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err == nil && r.URL.Path == api.PathToken && resp.StatusCode == http.StatusOK {
		t.crash("token")
	}
	return resp, err
}

// RunRunner runs the runner role until ctx ends.
func RunRunner(ctx context.Context, e Env) error {
	pc, err := e.client(nil)
	if err != nil {
		return err
	}
	cfg, keys, c, platformKeys := pc.cfg, pc.ring, pc.c, pc.platformKeys
	if err := os.MkdirAll(os.TempDir(), 0o700); err != nil {
		return fmt.Errorf("temporary dir: %w", err)
	}
	fetchDir := filepath.Join(cfg.StateDir, FetchDir)
	removeStaleFetches(fetchDir, time.Hour, time.Now(), e.Log)
	images, err := e.images(cfg, fetchDir)
	if err != nil {
		return err
	}
	rc := runner.DefaultConfig()
	if cfg.Proxy != "" {
		rc.JobEgress = &egressconf.Job{Proxy: cfg.Proxy, NoProxy: cfg.NoProxy, ExtraCA: cfg.ExtraCA}
	}
	rc.CollectorID, rc.HPKEKeys, rc.PlatformKey = cfg.CollectorID, keys.HPKEKeys, cfg.PlatformSigningKey
	rc.PlatformKeys, rc.PinPlatformKeys = platformKeys.Accepted, platformKeys.Apply
	rc.StateDir, rc.DefaultNetwork, rc.FreeMemory = cfg.StateDir, cfg.JobNetwork, host.FreeMemory
	// Envelopes expire in the platform's time, as it measures (a host
	// clock that drifted would refuse them all, or run stale ones).
	rc.Now = c.Clock().Now
	rc.CrashAt = e.crashAt("runner")
	p := &progress{path: e.healthFile(), stall: cfg.RunnerStall(), now: time.Now, log: e.Log}
	ledger := housekeeping.NewLedger(cfg.StateDir)
	jobs := &watchedAPI{JobAPI: c, p: p, logs: joblogs.New(cfg.StateDir), log: e.Log, now: time.Now}
	images = &recordingImages{Images: images, ledger: ledger, log: e.Log, now: time.Now}
	r, err := runner.New(rc, jobs, &watchedEngine{Engine: e.Engine, p: p}, images, selinux.Labeler{}, e.Log)
	if err != nil {
		return err
	}
	gc := &housekeeping.Collector{Ledger: ledger, Engine: e.Engine, Grace: cfg.ImageGrace(), Protect: []string{cfg.Image},
		Log: e.Log, Now: time.Now}
	e.Log.Info("runner starting", "collector", cfg.CollectorID, "platform", cfg.PlatformURL)
	defer releaseStartup()()
	p.note("starting")
	var wg sync.WaitGroup
	gcCtx, stopGC := context.WithCancel(ctx)
	wg.Go(func() { gc.Run(gcCtx) })
	defer wg.Wait()
	defer stopGC()
	// SIGUSR1 drains: the daemon's first step of an upgrade.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	wg.Go(func() {
		select {
		case <-usr1:
			e.Log.Info("asked to drain (SIGUSR1): leasing no more jobs")
			r.Drain()
		case <-gcCtx.Done():
		}
	})
	if err := r.Run(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	// Drained: say so and wait to be replaced. Exiting would have the
	// engine's restart policy start a runner that leases again.
	p.hold(DrainedDetail)
	e.Log.Info("drained: no job runs; waiting to be replaced")
	<-ctx.Done()
	return nil
}

// DrainedDetail is what a drained runner's health check says (the daemon
// waits for it: daemon.DrainedDetail).
const DrainedDetail = daemon.DrainedDetail

// healthFile is where the role keeps its health status: the tmpfs of its
// container, or nowhere when the role runs outside one (tests, a host
// without the mount).
func (e Env) healthFile() string {
	if e.HealthFile != "" {
		return e.HealthFile
	}
	if st, err := os.Stat(health.Dir); err == nil && st.IsDir() {
		return health.File
	}
	return ""
}

// images builds the verifier from the platform's policy, once the policy
// passes the operator's trust root: the platform cannot widen what the
// collector runs by rewriting policy.json.
func (e Env) images(cfg *config.Config, fetchDir string) (Images, error) {
	policy, err := readPolicy(e.Dir)
	if err != nil {
		return nil, err
	}
	data, exists, err := config.ReadTrustedKeys(e.Dir)
	if err != nil {
		return nil, err
	}
	root, err := trust.ParseRoot(data)
	if err != nil {
		return nil, fmt.Errorf("trusted image keys in %s: %w", e.Dir, err)
	}
	if !exists {
		// Installed before the trust root existed: the policy on disk is
		// the one accepted at enrollment; its keys stand in until the
		// installer runs again and pins them.
		if root, err = trust.PolicyKeys(policy); err != nil {
			return nil, fmt.Errorf("image policy: %w", err)
		}
		e.Log.Warn("no trusted image keys yet: trusting the keys of the enrollment's policy; run the installer again to pin them",
			"dir", e.Dir, "keys", root.Fingerprints())
	}
	if err := trust.CheckPolicy(policy, root, cfg.AllowInsecurePolicy); err != nil {
		return nil, fmt.Errorf("image policy in %s refused: %w", e.Dir, err)
	}
	return e.NewImages(ImagesConfig{Policy: policy, Insecure: cfg.InsecureRegistries, Egress: cfg.Egress(),
		Engine: e.Engine, Log: e.Log, FetchDir: fetchDir})
}

func readPolicy(dir string) (json.RawMessage, error) {
	b, err := os.ReadFile(dir + "/" + config.PolicyFile)
	if err != nil {
		return nil, fmt.Errorf("read image policy: %w", err)
	}
	return b, nil
}
