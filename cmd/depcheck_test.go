package cmd_test

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists the packages a command links, as `go list -deps` sees them
// with the release build tags.
func deps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-tags", "containers_image_openpgp", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	m := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		m[l] = true
	}
	return m
}

func forbid(t *testing.T, pkg string, deps map[string]bool, prefixes ...string) {
	t.Helper()
	for d := range deps {
		for _, p := range prefixes {
			if strings.HasPrefix(d, p) {
				t.Errorf("%s links %s: it must not (prefix %s)", pkg, d, p)
			}
		}
	}
}

// The platform never talks to a container engine: it meets the collector
// only over HTTPS, so it must not link the Podman bindings or the engine.
func TestPlatformLinksNoEngine(t *testing.T) {
	const pkg = "github.com/collectorhq/collector/cmd/platform"
	forbid(t, pkg, deps(t, pkg),
		"github.com/containers/podman/",
		"github.com/docker/docker/client",
		"github.com/collectorhq/collector/engine",
		"github.com/sigstore/cosign",
	)
}

// cosign adds ~77 MB and minutes of build; it belongs to the release tool.
func TestCollectorLinksNoCosign(t *testing.T) {
	const pkg = "github.com/collectorhq/collector/cmd/collector"
	d := deps(t, pkg)
	forbid(t, pkg, d, "github.com/sigstore/cosign", "github.com/collectorhq/collector/platform")
	// The control: the collector does link the bindings, so the guard sees real edges.
	if !d["github.com/containers/podman/v5/pkg/bindings"] {
		t.Errorf("%s does not link the Podman bindings: the dependency list is wrong", pkg)
	}
}
