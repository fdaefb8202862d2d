package browsertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/collectorhq/collector/internal/env"
)

// Environment variables the harness reads.
const (
	// EnvCI set to "true" makes a missing browser fail the test.
	EnvCI = env.CI
	// EnvChromium is the browser to run instead of DefaultPath.
	EnvChromium = env.TestChromium
	// EnvArtifacts is a directory where screenshots are kept after the
	// test ends (in a folder per test); without it they go to t.TempDir().
	EnvArtifacts = env.TestArtifacts
)

// DefaultPath is Debian's Chromium.
const DefaultPath = "/usr/bin/chromium"

// Options tune Start.
type Options struct {
	// TrustPEMFiles are PEM files of certificates (a test server's CA and
	// chain) whose keys the browser accepts for TLS as if they chained to
	// a public root (--ignore-certificate-errors-spki-list): the page is a
	// secure context without certificate errors, which WebAuthn requires.
	TrustPEMFiles []string
	// Timeout bounds each Do and Run of a tab (default 30 s).
	Timeout time.Duration
	// WindowWidth and WindowHeight size the window and so the screenshots
	// (default 1280×800).
	WindowWidth, WindowHeight int
}

// Browser is a running Chromium. It stops when the test ends.
type Browser struct {
	t       testing.TB
	ctx     context.Context
	timeout time.Duration
	out     *tailBuffer
}

// Path returns the browser Start runs: $COLLECTOR_TEST_CHROMIUM, or
// DefaultPath.
func Path() string {
	if p := env.Get(EnvChromium); p != "" {
		return p
	}
	return DefaultPath
}

// Need skips t (fails it under CI=true) when the browser is not installed,
// and under -short (make test-unit starts no browser).
func Need(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short (make test-unit) starts no browser")
	}
	if err := Installed(); err != nil {
		if env.InCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// Installed says why the browser cannot run, or nil.
func Installed() error {
	p := Path()
	if _, err := exec.LookPath(p); err != nil {
		return fmt.Errorf("browser tests need Chromium at %s (%v): apt-get install chromium", p, err)
	}
	return nil
}

// Start starts a headless Chromium for t (see Need for a missing one).
func Start(t testing.TB, o Options) *Browser {
	t.Helper()
	Need(t)
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.WindowWidth == 0 || o.WindowHeight == 0 {
		o.WindowWidth, o.WindowHeight = 1280, 800
	}
	pins, err := spkiPins(o.TrustPEMFiles)
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	b := &Browser{t: t, timeout: o.Timeout, out: &tailBuffer{max: 16 << 10}}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), b.flags(t, o, pins)...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(b.out.printf), chromedp.WithLogf(b.out.printf))
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		chromedp.Cancel(cctx)
		cancel()
		cancelAlloc() // waits for the browser process to exit
		if t.Failed() {
			t.Logf("browser output (tail):\n%s", b.out.String())
		}
	})
	// The first call starts the browser and binds it to ctx, which has no
	// deadline; a start that does not finish in time fails the test.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("browsertest: start %s: %v\n%s", Path(), err, b.out.String())
		}
	case <-time.After(o.Timeout):
		t.Fatalf("browsertest: %s did not start within %s\n%s", Path(), o.Timeout, b.out.String())
	}
	b.ctx = ctx
	return b
}

// flags are the browser's command line: headless, no sandbox (root in a
// container refuses it), no GPU, no QUIC, no background traffic, a fresh
// profile, and names resolved only for localhost.
func (b *Browser) flags(t testing.TB, o Options, pins []string) []chromedp.ExecAllocatorOption {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path()),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(b.out),
		chromedp.WindowSize(o.WindowWidth, o.WindowHeight),
	}
	for _, f := range []string{"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run", "no-default-browser-check",
		"disable-background-networking", "disable-component-update", "disable-sync", "disable-extensions",
		"disable-default-apps", "disable-dev-shm-usage", "hide-scrollbars", "mute-audio"} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	opts = append(opts,
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"))
	if len(pins) > 0 {
		opts = append(opts, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(pins, ",")))
	}
	return opts
}

// spkiPins returns the base64 SHA-256 of the public key of every
// certificate in files, as --ignore-certificate-errors-spki-list reads them.
func spkiPins(files []string) ([]string, error) {
	var pins []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read certificates: %w", err)
		}
		n := 0
		for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate in %s: %w", f, err)
			}
			sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
			pins = append(pins, base64.StdEncoding.EncodeToString(sum[:]))
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%s holds no PEM certificate", f)
		}
	}
	return pins, nil
}

// Tab is a tab in a browser context of its own.
type Tab struct {
	t   testing.TB
	b   *Browser
	ctx context.Context
}

// NewTab opens a tab in a new browser context: no cookie or storage of
// another tab is shared.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first call opens the tab and binds it to ctx (no deadline).
	opened := make(chan error, 1)
	go func() { opened <- chromedp.Do(ctx) }()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("browsertest: open a tab: %v", err)
		}
	case <-time.After(b.timeout):
		t.Fatalf("browsertest: a tab did not open within %s", b.timeout)
	}
	return &Tab{t: t, b: b, ctx: ctx}
}

// Context returns the tab's chromedp context, for chromedp calls the
// helpers do not cover (give each a deadline).
func (tb *Tab) Context() context.Context { return tb.ctx }

// Do runs steps in the tab within the browser's timeout; an error fails
// the test.
func (tb *Tab) Do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := tb.Try(steps...); err != nil {
		tb.t.Fatal(err)
	}
}

// Try is Do that returns the error.
func (tb *Tab) Try(steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tb.ctx, tb.b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		return fmt.Errorf("browser: %w", err)
	}
	return nil
}

// Run runs one action in tb and returns its value; an error fails the test.
func Run[T any](tb *Tab, a chromedp.Action[T]) T {
	tb.t.Helper()
	v, err := TryRun(tb, a)
	if err != nil {
		tb.t.Fatal(err)
	}
	return v
}

// TryRun is Run that returns the error.
func TryRun[T any](tb *Tab, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, tb.b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		return v, fmt.Errorf("browser: %w", err)
	}
	return v, nil
}

// Screenshot saves a PNG of the tab's viewport as name.png among the
// test's artifacts and returns its path.
func (tb *Tab) Screenshot(name string) string {
	tb.t.Helper()
	png := Run(tb, chromedp.CaptureScreenshot())
	path := filepath.Join(ArtifactsDir(tb.t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatalf("save screenshot: %v", err)
	}
	tb.t.Logf("screenshot %s", path)
	return path
}

var artifactDirs sync.Map // test name -> dir

// ArtifactsDir returns the directory of t's artifacts: a folder named
// after the test under $COLLECTOR_TEST_ARTIFACTS (kept), else t.TempDir().
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	if d, ok := artifactDirs.Load(t.Name()); ok {
		return d.(string)
	}
	dir := t.TempDir()
	if root := env.Get(EnvArtifacts); root != "" {
		dir = filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("artifacts dir: %v", err)
		}
	}
	artifactDirs.Store(t.Name(), dir)
	t.Cleanup(func() { artifactDirs.Delete(t.Name()) })
	return dir
}

// tailBuffer keeps the last max bytes written (the browser's output and
// chromedp's complaints), for a failed test's log.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range bytes.SplitAfter(p, []byte("\n")) {
		// Without a system bus (a container), Chromium logs each D-Bus call
		// it could not make: harmless, and it would bury what matters.
		if !bytes.Contains(line, []byte(":ERROR:dbus/")) {
			b.buf.Write(line)
		}
	}
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) printf(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
