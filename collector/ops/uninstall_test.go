package ops

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
)

// lateCreate is an engine whose runner had sent a job container's create
// just before it was removed: the engine finishes it after Uninstall's
// first sweep of the job containers (what a clean CI run of the operator
// e2e once showed: a second uninstall found the job container). Only the
// calls Uninstall makes are answered.
type lateCreate struct {
	engine.Engine
	mu      sync.Mutex
	roles   map[string]bool
	jobs    []engine.Container
	lists   int
	pending *engine.Container // appears after the first list
}

func (l *lateCreate) RemoveContainer(_ context.Context, id string, _ bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.roles[id] {
		delete(l.roles, id)
		return nil
	}
	for i, j := range l.jobs {
		if j.ID == id {
			l.jobs = slices.Delete(l.jobs, i, i+1)
			return nil
		}
	}
	return engine.ErrNotFound
}

func (l *lateCreate) ListContainers(_ context.Context, labels map[string]string) ([]engine.Container, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	out := slices.Clone(l.jobs)
	if l.lists == 1 && l.pending != nil {
		l.jobs = append(l.jobs, *l.pending)
		l.pending = nil
	}
	return out, nil
}

func installedEnv(t *testing.T, eng engine.Engine) *Env {
	t.Helper()
	keys, err := config.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "etc")
	cfg := &config.Config{
		CollectorID: "col_test", PlatformURL: "https://127.0.0.1:1", CAPin: "sha256:x",
		PlatformSigningKey: make(ed25519.PublicKey, ed25519.PublicKeySize), Audience: "a",
		StateDir: t.TempDir(), Engine: config.EngineConfig{SecretDir: t.TempDir()},
	}
	if err := config.Save(dir, cfg, keys); err != nil {
		t.Fatal(err)
	}
	return &Env{Dir: dir, Engine: eng}
}

func TestUninstallSweepsAJobCreatedAfterTheRunnerWent(t *testing.T) {
	defer func(d time.Duration) { jobSettle = d }(jobSettle)
	jobSettle = 10 * time.Millisecond
	late := &engine.Container{ID: "c1", Name: "collector-job-j1", Labels: map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelCollector: "col_test"}}
	eng := &lateCreate{roles: map[string]bool{"collector-daemon": true, "collector-runner": true}, pending: late}
	var out bytes.Buffer
	removed, err := Uninstall(context.Background(), installedEnv(t, eng), UninstallOptions{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, "job container collector-job-j1") || len(eng.jobs) != 0 {
		t.Errorf("the job container the engine created after the first sweep is left: removed %q, left %+v\n%s", removed, eng.jobs, out.String())
	}

	// No runner removed (a second uninstall): one sweep, no pause.
	jobSettle = time.Hour
	eng2 := &lateCreate{roles: map[string]bool{}}
	start := time.Now()
	if _, err := Uninstall(context.Background(), installedEnv(t, eng2), UninstallOptions{Out: &out}); err != nil {
		t.Fatal(err)
	}
	if eng2.lists != 1 || time.Since(start) > time.Minute {
		t.Errorf("with no runner removed: %d sweeps in %v, want 1 and no pause", eng2.lists, time.Since(start))
	}
}
