package runner_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/selinux"
)

// sickEngine is an engine whose Info fails while err is set; it holds no
// containers. Each Info call is signalled on checks.
type sickEngine struct {
	engine.Engine // nil: the runner must not call anything else here

	mu     sync.Mutex
	err    error
	lists  int
	checks chan error
}

func (e *sickEngine) Info(ctx context.Context) (*engine.Info, error) {
	e.mu.Lock()
	err := e.err
	e.mu.Unlock()
	select {
	case e.checks <- err:
	default:
	}
	if err != nil {
		return nil, err
	}
	return &engine.Info{Kind: engine.KindPodman, Version: "4.3.1"}, nil
}

func (e *sickEngine) ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	e.mu.Lock()
	e.lists++
	e.mu.Unlock()
	return nil, nil
}

func (e *sickEngine) set(err error) {
	e.mu.Lock()
	e.err = err
	e.mu.Unlock()
}

// testConfig is a runner config for collector col_test with fresh keys.
func testConfig(t *testing.T) runner.Config {
	cfg := runner.DefaultConfig()
	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	cfg.CollectorID, cfg.HPKEKey, cfg.PlatformKey, cfg.StateDir = "col_test", hk, pub, t.TempDir()
	cfg.RetryBackoff = 5 * time.Millisecond
	return cfg
}

// TestNoLeaseWhileTheEngineIsDown: a runner whose engine does not answer
// (the Podman service restarting) asks the platform for no job, logs that
// once, and goes back to asking by itself when the engine answers again.
func TestNoLeaseWhileTheEngineIsDown(t *testing.T) {
	eng := &sickEngine{checks: make(chan error)}
	eng.set(fmt.Errorf("%w: ping podman at unix:///run/podman/podman.sock: connect: connection refused", engine.ErrUnavailable))
	plat := newFakePlatform()
	logs := &testutil.Buffer{}
	run, err := runner.New(testConfig(t), plat, eng, nil, selinux.Labeler{}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { run.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	timeout := time.After(10 * time.Second)
	for range 5 { // five checks of a failing engine
		select {
		case err := <-eng.checks:
			if err == nil {
				t.Fatal("the engine check saw no failure")
			}
		case <-timeout:
			t.Fatalf("the runner does not check its engine; log:\n%s", logs)
		}
	}
	plat.mu.Lock()
	nexts := plat.nexts
	plat.mu.Unlock()
	if nexts != 0 {
		t.Fatalf("the runner asked for a job %d times while its engine failed", nexts)
	}
	eng.mu.Lock()
	lists := eng.lists
	eng.mu.Unlock()
	if lists != 0 {
		t.Errorf("the runner looked for leftovers %d times while its engine failed", lists)
	}

	eng.set(nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		plat.mu.Lock()
		nexts = plat.nexts
		plat.mu.Unlock()
		if nexts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner did not ask for jobs after the engine came back; log:\n%s", logs)
		}
		select {
		case <-eng.checks:
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := strings.Count(logs.String(), "container engine unreachable"); n != 1 {
		t.Errorf("the engine failure was logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "container engine reachable again") {
		t.Errorf("the recovery was not logged:\n%s", logs)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if eng.lists == 0 {
		t.Errorf("the leftovers were never cleaned once the engine answered")
	}
}
