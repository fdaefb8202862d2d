package enginetest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/docker"
	"github.com/collectorhq/collector/engine/podman"
)

// BenchmarkRunCycle runs create → start → wait → remove of the test image
// through each backend and, interleaved in the same loop as the baseline,
// `podman run --rm` of Podman's own CLI on the same storage. It reports
// the medians and their ratio (backend/CLI; ≤ 1 means no slower than the CLI).
func BenchmarkRunCycle(b *testing.B) {
	need(b)
	ctx := context.Background()
	pe, err := podman.New(ctx, env.podman.URI(), podman.WithSecretDir(secretDir(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer pe.Close()
	de, err := docker.New(ctx, env.dockerd.URI(), secretDir(b))
	if err != nil {
		b.Fatal(err)
	}
	defer de.Close()
	for _, tc := range []struct {
		name string
		eng  engine.Engine
	}{{"podman", pe}, {"docker", de}} {
		if _, err := tc.eng.PullImage(ctx, env.image, engine.PullOptions{Insecure: true}); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			var backend, cli []time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := cycle(ctx, tc.eng, fmt.Sprintf("bench-%s-%d-%d", tc.name, time.Now().UnixNano(), i)); err != nil {
					b.Fatal(err)
				}
				backend = append(backend, time.Since(start))
				start = time.Now()
				if _, err := env.podman.Run("run", "--rm", "--network", "none", env.image, "true"); err != nil {
					b.Fatal(err)
				}
				cli = append(cli, time.Since(start))
			}
			mb, mc := median(backend), median(cli)
			b.ReportMetric(float64(mb.Microseconds())/1000, "backend-ms")
			b.ReportMetric(float64(mc.Microseconds())/1000, "cli-ms")
			b.ReportMetric(float64(mb)/float64(mc), "ratio")
		})
	}
}

func cycle(ctx context.Context, eng engine.Engine, name string) error {
	id, err := eng.CreateContainer(ctx, &engine.ContainerSpec{
		Name: name, Image: env.image, Command: []string{"true"}, Network: "none",
		Ulimits: []engine.Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}, {Name: "nproc", Soft: 1024, Hard: 1024}},
	})
	if err != nil {
		return err
	}
	if err := eng.StartContainer(ctx, id); err != nil {
		return err
	}
	if code, err := eng.WaitContainer(ctx, id); err != nil || code != 0 {
		return fmt.Errorf("wait: exit %d, %v", code, err)
	}
	return eng.RemoveContainer(ctx, id, false)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
