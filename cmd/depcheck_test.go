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

// sqlDrivers are the imports that mean "talks SQL".
var sqlDrivers = []string{"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx", "github.com/lib/pq", "github.com/mattn/go-sqlite3"}

// isBackend says whether a package is a storage backend: the only places
// SQL may live (*/sqlite now, */postgres later).
func isBackend(pkg string) bool {
	return strings.HasSuffix(pkg, "/sqlite") || strings.HasSuffix(pkg, "/postgres")
}

// directImports lists, for every package of the module, the packages its
// non-test files import (go list's Imports, with the build tags).
func directImports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-tags", "containers_image_openpgp",
		"-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/collectorhq/collector/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// SQL lives in the backends only (P7): a package that is not a backend
// and imports database/sql or a driver would tie the platform to one
// database, and the backend chosen in cmd/ would not be the only one used.
func TestSQLOnlyInBackends(t *testing.T) {
	imports := directImports(t)
	backendsWithSQL := 0
	for pkg, imps := range imports {
		for _, imp := range imps {
			for _, d := range sqlDrivers {
				if imp != d && !strings.HasPrefix(imp, d+"/") {
					continue
				}
				if isBackend(pkg) {
					backendsWithSQL++
				} else {
					t.Errorf("%s imports %s: SQL belongs in a backend package (*/sqlite, */postgres)", pkg, imp)
				}
			}
		}
	}
	// The control: the guard sees the backends' own imports.
	if backendsWithSQL == 0 {
		t.Error("no backend imports database/sql: the import lists are wrong")
	}
}
