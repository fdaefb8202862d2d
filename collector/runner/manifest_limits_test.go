package runner_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integration/manifest"
)

// TestManifestLimits: the manifest narrows the envelope's limits (the
// platform's ceiling, the runner's defaults where it sets none) to what
// it asks, never above them; a validation gets validation.timeout.
func TestManifestLimits(t *testing.T) {
	ceiling := crypto.Limits{MemoryBytes: 512 << 20, CPUs: 1, Pids: 512, TimeoutSec: 3600}
	asks := &manifest.Manifest{Resources: manifest.Resources{MemoryBytes: 256 << 20, CPUs: 0.5, Pids: 64, Timeout: 2 * time.Hour},
		Validation: manifest.Validation{Supported: true, Timeout: 30 * time.Second}}
	for _, c := range []struct {
		name       string
		lim        crypto.Limits
		m          *manifest.Manifest
		validating bool
		want       crypto.Limits
	}{
		{"no manifest", ceiling, nil, false, ceiling},
		// The platform seals a validation with up to 10 minutes.
		{"validation without a manifest", ceiling, nil, true, crypto.Limits{MemoryBytes: 512 << 20, CPUs: 1, Pids: 512, TimeoutSec: 60}},
		{"validation asking 5m", crypto.Limits{TimeoutSec: 600}, &manifest.Manifest{Validation: manifest.Validation{Supported: true, Timeout: 5 * time.Minute}}, true,
			crypto.Limits{TimeoutSec: 300}},
		{"manifest asks nothing", ceiling, &manifest.Manifest{}, false, ceiling},
		// 2h asked, 1h allowed.
		{"narrowed", ceiling, asks, false, crypto.Limits{MemoryBytes: 256 << 20, CPUs: 0.5, Pids: 64, TimeoutSec: 3600}},
		{"validation", ceiling, asks, true, crypto.Limits{MemoryBytes: 256 << 20, CPUs: 0.5, Pids: 64, TimeoutSec: 30}},
		{"never above the ceiling", crypto.Limits{MemoryBytes: 128 << 20, CPUs: 0.25, Pids: 32, TimeoutSec: 60}, asks, false,
			crypto.Limits{MemoryBytes: 128 << 20, CPUs: 0.25, Pids: 32, TimeoutSec: 60}},
		// The runner's defaults (512 MiB, 512 pids, 1 h) are the ceiling
		// where the envelope sets none; no CPU limit is none.
		{"runner defaults", crypto.Limits{}, &manifest.Manifest{Resources: manifest.Resources{MemoryBytes: 1 << 30, CPUs: 2, Pids: 1 << 20, Timeout: 10 * time.Minute}}, false,
			crypto.Limits{MemoryBytes: 512 << 20, CPUs: 2, Pids: 512, TimeoutSec: 600}},
		{"sub-second timeout", ceiling, &manifest.Manifest{Resources: manifest.Resources{Timeout: 100 * time.Millisecond}}, false,
			crypto.Limits{MemoryBytes: 512 << 20, CPUs: 1, Pids: 512, TimeoutSec: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := runner.ManifestLimits(c.lim, c.m, c.validating); got != c.want {
				t.Errorf("limits %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestJobRunsWithinItsManifest: a job whose image's manifest asks for
// less than the envelope allows runs with what it asks (memory, CPUs,
// pids, time), and with no network when it says it reaches nothing and
// its integration names none; a network the integration names stands.
func TestJobRunsWithinItsManifest(t *testing.T) {
	const doc = `{"manifest_version":1,"name":"small","version":"1",
		"resources":{"memory":"32Mi","cpus":0.5,"pids":16,"timeout":"1s"},"network":{"access":"none"}}`
	for _, c := range []struct {
		name, network, want string
	}{
		{"no network named", "", "none"},
		{"network named", "host", "host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFakeRig(t)
			r.cfg.DefaultNetwork = "bridge"
			r.eng.imageLabels = map[string]string{manifest.Label: doc}
			r.eng.setProgram("job_m", func(ctx context.Context, stdout, stderr io.Writer) int {
				records(stdout, "k", 1)
				<-ctx.Done() // runs until stopped
				return 143
			})
			r.plat.push(r.lease("job_m", "int_m", "lease-1", 30, map[string]any{"token": "tok"}, func(j *crypto.Job) {
				j.Network = c.network
				j.Limits = crypto.Limits{MemoryBytes: 64 << 20, CPUs: 1, Pids: 512, TimeoutSec: 60}
			}))
			start := time.Now()
			r.start()
			fin := r.finished("job_m")
			if took := time.Since(start); !strings.Contains(fin.Error, "timed out after 1s") || took > 20*time.Second {
				t.Errorf("finish %+v after %v: want the manifest's 1 s time limit, not the envelope's minute", fin, took)
			}
			r.gone("job_m")
			r.eng.mu.Lock()
			spec := r.eng.specs["collector-job-job_m"]
			r.eng.mu.Unlock()
			if want := (engine.Resources{MemoryBytes: 32 << 20, CPUs: 0.5, Pids: 16}); spec.Resources != want {
				t.Errorf("container resources %+v, want the manifest's %+v", spec.Resources, want)
			}
			if spec.Network != c.want {
				t.Errorf("container network %q, want %q", spec.Network, c.want)
			}
		})
	}
}
