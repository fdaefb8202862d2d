package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine/podman"
)

type lineCounter struct{ n, bytes int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte("\n"))
	c.bytes += len(p)
	return len(p), nil
}

func BenchmarkZZDebugLogs(b *testing.B) {
	benchNeed(b)
	k := podmanKit()
	cfgFile := filepath.Join(b.TempDir(), "config.json")
	raw, _ := json.Marshal(map[string]any{"count": 1000000})
	os.WriteFile(cfgFile, raw, 0o644)
	eng, err := podman.New(context.Background(), world.podman.URI())
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		out, err := k.run("create", "--network", "host", "-v", cfgFile+":/run/collector/config.json:ro", world.exampleImage)
		if err != nil {
			b.Fatal(out)
		}
		id := strings.TrimSpace(out)
		id = id[strings.LastIndex(id, "\n")+1:]
		if out, err := k.run("start", id); err != nil {
			b.Fatal(out)
		}
		var so, se lineCounter
		t0 := time.Now()
		err = eng.ContainerLogs(context.Background(), id, true, &so, &se)
		code, werr := eng.WaitContainer(context.Background(), id)
		b.Logf("follow: err %v, %d stdout lines (%d bytes), %d stderr lines in %v; exit %d %v", err, so.n, so.bytes, se.n, time.Since(t0), code, werr)
		var so2, se2 lineCounter
		err = eng.ContainerLogs(context.Background(), id, false, &so2, &se2)
		b.Logf("no follow: err %v, %d stdout lines, %d stderr lines", err, so2.n, se2.n)
		out, _ = k.run("inspect", "--format", "{{.HostConfig.LogConfig.Path}} {{.HostConfig.LogConfig.Type}} {{.HostConfig.LogConfig.Size}}", id)
		b.Logf("log config: %s", out)
		if f := strings.Fields(out); len(f) > 0 {
			if st, err := os.Stat(f[0]); err == nil {
				b.Logf("log file size %d", st.Size())
			}
		}
		k.run("rm", "-f", id)
	}
}
