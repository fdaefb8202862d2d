package test

import (
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/testutil"
)

// TestCollectorBehindProxy: a collector installed with a proxy (a real
// tinyproxy asking for credentials, allowing CONNECT to the platform's
// port only) enrolls, heartbeats and runs a job with every request to the
// platform and to the registry going through the proxy: the proxy's log
// has the CONNECTs to the platform, and as many requests for the job's
// image repository as the registry's own access log has during the job
// (the runner verified and fetched the image itself, through the proxy,
// and loaded it: the engine, which has no proxy, pulled nothing; the
// image is in its store under the tag the collector gives it). The proxy's
// password is in no container's inspect.
func TestCollectorBehindProxy(t *testing.T) {
	need(t)
	const password = "e2e-pr0xy-pw"
	image := world.registry.Addr + "/collectorhq/proxied-example:e2e"
	repoPath := "/v2/collectorhq/proxied-example/"
	// The example with one more label: content the engine does not hold
	// (it would run its copy of the same ID without a fetch).
	pushVariant(t, world.exampleImage, image, map[string]string{"io.collector.e2e": t.Name()})
	keys := filepath.Join(world.dir, "keys")
	if _, err := run(keys, []string{"COSIGN_PASSWORD=e2e-password"}, filepath.Join(world.bin, "collector-release"),
		"sign", "--insecure", "--key", filepath.Join(keys, "cosign.key"), image); err != nil {
		t.Fatal(err)
	}

	p := startPlatform(t)
	pu, _ := url.Parse(p.url)
	tp := testutil.StartTinyproxy(t, pu.Port(), "collector", password)
	k := podmanKit(t)
	h := installHost(t, p, k, map[string]string{env.Proxy: "http://collector:" + password + "@" + tp.Addr})
	enrolled := tp.Connects(t, pu.Host)
	if enrolled == 0 {
		t.Fatalf("the installer enrolled without the proxy: no CONNECT %s in its log", pu.Host)
	}
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	if n := tp.Connects(t, pu.Host); n <= enrolled {
		t.Errorf("the daemon's heartbeats opened no CONNECT to %s through the proxy (%d after enrollment, %d now)", pu.Host, enrolled, n)
	}

	id := p.integration(t, h.id, image, map[string]any{"count": 7, "prefix": "px-", "token": "e2e-proxy-job-secret"})
	regLog := filepath.Join(world.registry.Dir, "registry.log")
	before := registryRequests(t, regLog, repoPath, -1)
	start := fileSize(t, regLog)
	if n := tp.Requests(t, "http://"+world.registry.Addr+repoPath); n != 0 {
		t.Fatalf("%d requests for the job's image through the proxy before any job", n)
	}
	j := p.waitSucceeded(t, p.runJob(t, id).ID, 3*time.Minute, "a job behind the proxy")
	if keys := p.entityKeys(t, id); len(keys) != 8 {
		t.Errorf("%d entities, want 7 and the token's proof", len(keys))
	}
	direct := registryRequests(t, regLog, repoPath, start)
	proxied := tp.Requests(t, "http://"+world.registry.Addr+repoPath)
	t.Logf("job %s: the registry served %d requests for %s during it (%d before), the proxy forwarded %d", j.ID, direct, repoPath, before, proxied)
	if proxied < 3 || proxied != direct {
		b, _ := os.ReadFile(tp.Log)
		t.Errorf("the registry served %d requests for the image during the job, the proxy forwarded %d: want the same, at least 3 (manifest, signature, blobs)\nproxy log:\n%s", direct, proxied, b)
	}
	out, err := world.podman.Run("images", "--format", "{{.Repository}}:{{.Tag}}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, world.registry.Addr+"/collectorhq/proxied-example:sha256-") {
		t.Errorf("the engine holds no image the collector loaded:\n%s", out)
	}
	for _, c := range []string{"collector-daemon", "collector-runner"} {
		out, err := k.run("inspect", c)
		if err != nil {
			t.Fatalf("inspect %s: %v", c, err)
		}
		if strings.Contains(out, password) {
			t.Errorf("the proxy password is in podman inspect %s", c)
		}
	}
}

// registryRequests counts the requests for paths starting with prefix in
// the registry's access log from byte offset from on (-1: all).
func registryRequests(t *testing.T, path, prefix string, from int64) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if from > 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH"} {
			if strings.Contains(line, `] "`+m+" "+prefix) {
				n++
			}
		}
	}
	return n
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// pushVariant copies the image from to the registry as to, with labels
// added to its config: an image of its own ID.
func pushVariant(t *testing.T, from, to string, labels map[string]string) {
	t.Helper()
	src, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.ParseReference(to, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = maps.Clone(cfg.Labels)
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	maps.Copy(cfg.Labels, labels)
	variant, err := mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// One layer at a time: go-containerregistry v0.20.7 updates a
	// writer's scopes unguarded when a layer is mounted from another
	// repository, while its other upload workers read them (a data race
	// the race detector reported in CI).
	if err := remote.Write(dst, variant, remote.WithJobs(1)); err != nil {
		t.Fatal(err)
	}
}
