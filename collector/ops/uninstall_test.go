package ops

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
)

// lateCreate is an engine whose runner had sent a job container's create
// just before it was removed: the engine finishes it after Uninstall's
// first sweep of the job containers. Only the calls Uninstall makes are
// answered; roles maps a role container's name to its collector's ID.
type lateCreate struct {
	engine.Engine
	mu      sync.Mutex
	roles   map[string]string
	jobs    []engine.Container
	lists   int
	pending *engine.Container // appears after the first list
}

func (l *lateCreate) InspectContainer(_ context.Context, id string) (*engine.Container, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if col, ok := l.roles[id]; ok {
		return &engine.Container{ID: id, Name: id, Labels: map[string]string{install.LabelCollector: col}}, nil
	}
	return nil, engine.ErrNotFound
}

func (l *lateCreate) RemoveContainer(_ context.Context, id string, _ bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.roles[id]; ok {
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
	if labels[runner.LabelCollector] != "" {
		l.lists++
	}
	var out []engine.Container
	for _, j := range l.jobs {
		if labels[runner.LabelCollector] == "" || j.Labels[runner.LabelCollector] == labels[runner.LabelCollector] {
			out = append(out, j)
		}
	}
	if l.lists == 1 && l.pending != nil {
		l.jobs = append(l.jobs, *l.pending)
		l.pending = nil
	}
	return out, nil
}

func jobOf(collector, job string) engine.Container {
	return engine.Container{ID: "id-" + job, Name: "collector-job-" + job, Labels: map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelCollector: collector}}
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
	late := jobOf("col_test", "j1")
	eng := &lateCreate{roles: map[string]string{"collector-daemon": "col_test", "collector-runner": "col_test"}, pending: &late}
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
	eng2 := &lateCreate{roles: map[string]string{}}
	start := time.Now()
	if _, err := Uninstall(context.Background(), installedEnv(t, eng2), UninstallOptions{Out: &out}); err != nil {
		t.Fatal(err)
	}
	if eng2.lists != 1 || time.Since(start) > time.Minute {
		t.Errorf("with no runner removed: %d sweeps in %v, want 1 and no pause", eng2.lists, time.Since(start))
	}
}

// TestUninstallLeavesOtherCollectorsJobs: several collectors share one
// engine (COLLECTOR_NAME_PREFIX). Without its config, uninstall removes the
// job containers of the collector whose daemon and runner it found by
// name, and with nothing found, none: never another collector's job
// container, nor the secret files that may be its jobs' (what a second
// uninstall of an e2e host did to the jobs other tests left on the shared
// engine).
func TestUninstallLeavesOtherCollectorsJobs(t *testing.T) {
	defer func(d time.Duration) { jobSettle = d }(jobSettle)
	jobSettle = time.Millisecond
	secrets := t.TempDir()
	for _, f := range []string{"collector-job-mine", "collector-job-theirs", "collector-job-theirs-egress"} {
		if err := os.WriteFile(filepath.Join(secrets, f), []byte("x"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := config.NewKeys()
	etc := filepath.Join(t.TempDir(), "etc")
	cfg := &config.Config{CollectorID: "col_mine", PlatformURL: "https://127.0.0.1:1", CAPin: "sha256:x",
		PlatformSigningKey: make(ed25519.PublicKey, ed25519.PublicKeySize), Audience: "a",
		StateDir: t.TempDir(), Engine: config.EngineConfig{SecretDir: secrets}}
	if err := config.Save(etc, cfg, keys); err != nil {
		t.Fatal(err)
	}
	// The config cannot be read: uninstall goes by name and label.
	if err := os.WriteFile(filepath.Join(etc, config.ConfigFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	eng := &lateCreate{roles: map[string]string{"collector-daemon": "col_mine", "collector-runner": "col_mine"},
		jobs: []engine.Container{jobOf("col_mine", "mine"), jobOf("col_theirs", "theirs")}}
	var out bytes.Buffer
	removed, err := Uninstall(context.Background(), &Env{Dir: etc, Engine: eng}, UninstallOptions{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, "job container collector-job-mine") || len(eng.jobs) != 1 || eng.jobs[0].Name != "collector-job-theirs" {
		t.Errorf("removed %q, left %+v: want the found collector's job gone and the other's kept\n%s", removed, eng.jobs, out.String())
	}
	_ = secrets // the unreadable config names no secret dir: the default one is not this test's to look at

	// Run again: nothing of this collector is left, and the other's job stays.
	out.Reset()
	removed, err = Uninstall(context.Background(), &Env{Dir: etc, Engine: eng}, UninstallOptions{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 || len(eng.jobs) != 1 || !strings.Contains(out.String(), "nothing left to remove") || !strings.Contains(out.String(), "1 job container(s) of other collectors") {
		t.Errorf("second uninstall removed %q, left %+v:\n%s", removed, eng.jobs, out.String())
	}

	// With its config: its job's secret goes, the other's stays.
	etc2 := filepath.Join(t.TempDir(), "etc")
	if err := config.Save(etc2, cfg, keys); err != nil {
		t.Fatal(err)
	}
	eng.jobs = append(eng.jobs, jobOf("col_mine", "mine"))
	out.Reset()
	if _, err := Uninstall(context.Background(), &Env{Dir: etc2, Engine: eng}, UninstallOptions{Out: &out}); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(secrets)
	var names []string
	for _, de := range left {
		names = append(names, de.Name())
	}
	if !slices.Equal(names, []string{"collector-job-theirs", "collector-job-theirs-egress"}) {
		t.Errorf("secret files left %q: want the other collector's only\n%s", names, out.String())
	}
}
