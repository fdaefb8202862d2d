package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/collectorhq/collector/integration/manifest"
	"github.com/collectorhq/collector/internal/egressconf"
)

// TestJobGetsTheProxyOnlyIfItAsks: a job whose image's manifest asks for
// the proxy (network.proxy) on a collector that has one gets it as a
// second 0400 secret at egressconf.JobPath, owned by the image's user,
// removed with the job; the proxy's password is redacted from its logs.
// A job whose manifest does not ask, or a collector without a proxy,
// mounts no such secret.
func TestJobGetsTheProxyOnlyIfItAsks(t *testing.T) {
	const password = "pr0xy-s3cret-pw"
	proxy := &egressconf.Job{Proxy: "http://job:" + password + "@proxy.example:3128", NoProxy: []string{"10.0.0.0/8"}}
	asks := `{"manifest_version":1,"name":"web","version":"1","network":{"access":"outbound","proxy":true}}`
	silent := `{"manifest_version":1,"name":"web","version":"1","network":{"access":"outbound"}}`
	for _, c := range []struct {
		name     string
		manifest string
		proxy    *egressconf.Job
		gets     bool
	}{
		{"asks", asks, proxy, true},
		{"does not ask", silent, proxy, false},
		{"no manifest", "", proxy, false},
		{"collector without a proxy", asks, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFakeRig(t)
			r.cfg.JobEgress = c.proxy
			if c.manifest != "" {
				r.eng.imageLabels = map[string]string{manifest.Label: c.manifest}
			}
			r.eng.setProgram("job_e", func(ctx context.Context, stdout, stderr io.Writer) int {
				fmt.Fprintf(stderr, "proxy is %s\n", proxy.Proxy)
				records(stdout, "k", 1)
				return 0
			})
			r.plat.push(r.lease("job_e", "int_e", "lease-1", 30, map[string]any{"token": "tok-egress"}))
			r.start()
			if fin := r.finished("job_e"); fin.ExitCode != 0 || fin.Error != "" {
				t.Fatalf("finish = %+v", fin)
			}
			r.gone("job_e")
			r.eng.mu.Lock()
			mounts := r.eng.mounts["collector-job-job_e"]
			doc, created := r.eng.everSecrets["collector-job-job_e-egress"]
			left := r.eng.secrets["collector-job-job_e-egress"]
			r.eng.mu.Unlock()
			var mounted bool
			for _, m := range mounts {
				if m.Target == egressconf.JobPath {
					mounted = true
					if m.Name != "collector-job-job_e-egress" || m.Mode != 0o400 || m.UID != 1000 || m.GID != 1000 {
						t.Errorf("egress mount %+v, want the job's egress secret, 0400, owned by 1000:1000", m)
					}
				}
			}
			if mounted != c.gets || created != c.gets {
				t.Fatalf("egress secret mounted %v, created %v; want %v (mounts %+v)", mounted, created, c.gets, mounts)
			}
			if left != nil {
				t.Error("the egress secret outlived the job")
			}
			if c.gets {
				var got egressconf.Job
				if err := json.Unmarshal(doc, &got); err != nil || got.Proxy != proxy.Proxy || len(got.NoProxy) != 1 {
					t.Errorf("egress secret %s (%v), want the collector's proxy", doc, err)
				}
			}
			r.plat.mu.Lock()
			logs := r.plat.logs["job_e"].String()
			r.plat.mu.Unlock()
			if c.proxy != nil && (strings.Contains(logs, password) || !strings.Contains(logs, "[REDACTED]")) {
				t.Errorf("job logs %q: want the proxy password redacted", logs)
			}
		})
	}
}
