package runner_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine"
)

// sickEngine is a fakeEngine whose Ping fails while err is set; each Ping
// call is signalled on checks, and leftover searches are counted.
type sickEngine struct {
	*fakeEngine

	mu     sync.Mutex
	err    error
	lists  int
	checks chan error
}

func (e *sickEngine) Ping(ctx context.Context) error {
	e.mu.Lock()
	err := e.err
	e.mu.Unlock()
	select {
	case e.checks <- err:
	default:
	}
	if err != nil {
		return err
	}
	return e.fakeEngine.Ping(ctx)
}

func (e *sickEngine) ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	e.mu.Lock()
	e.lists++
	e.mu.Unlock()
	return e.fakeEngine.ListContainers(ctx, labels)
}

func (e *sickEngine) set(err error) {
	e.mu.Lock()
	e.err = err
	e.mu.Unlock()
}

func (e *sickEngine) listed() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lists
}

// TestNoLeaseWhileTheEngineIsDown: a runner whose engine does not answer
// (the Podman service restarting) asks the platform for no job, logs that
// once, and goes back to asking by itself when the engine answers again.
func TestNoLeaseWhileTheEngineIsDown(t *testing.T) {
	r := newFakeRig(t)
	sick := &sickEngine{fakeEngine: r.eng, checks: make(chan error)}
	sick.set(fmt.Errorf("%w: ping podman at unix:///run/podman/podman.sock: connect: connection refused", engine.ErrUnavailable))
	r.engine = sick
	r.start()

	timeout := time.After(10 * time.Second)
	for range 5 { // five checks of a failing engine
		select {
		case err := <-sick.checks:
			if err == nil {
				t.Fatal("the engine check saw no failure")
			}
		case <-timeout:
			t.Fatalf("the runner does not check its engine; log:\n%s", r.logs)
		}
	}
	if n := r.nexts(); n != 0 {
		t.Fatalf("the runner asked for a job %d times while its engine failed", n)
	}
	if n := sick.listed(); n != 0 {
		t.Errorf("the runner looked for leftovers %d times while its engine failed", n)
	}

	sick.set(nil)
	r.waitUntil("the runner asks for jobs again", func() bool { return r.nexts() > 0 })
	if n := strings.Count(r.logs.String(), "container engine unreachable"); n != 1 {
		t.Errorf("the engine failure was logged %d times, want once:\n%s", n, r.logs)
	}
	if !strings.Contains(r.logs.String(), "container engine reachable again") {
		t.Errorf("the recovery was not logged:\n%s", r.logs)
	}
	if sick.listed() == 0 {
		t.Errorf("the leftovers were never cleaned once the engine answered")
	}
}
