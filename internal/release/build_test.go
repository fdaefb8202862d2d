package release_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/integration/manifest"
	"github.com/collectorhq/collector/internal/release"
)

var update = flag.Bool("update", false, "rewrite packaging/containers/integration-*/Containerfile from the built-in one")

// Our integration images are built with the built-in Containerfile's
// recipe: each packaging/containers/integration-NAME/Containerfile is its
// rendering for integrations/NAME/integration.yaml, byte for byte (go test
// -run Containerfiles -update rewrites them). The image builds themselves,
// and their reproducibility, are checked in test/ (TestIntegrationImages).
func TestContainerfilesAreTheBuiltInRecipe(t *testing.T) {
	manifests, _ := filepath.Glob("../../integrations/*/integration.yaml")
	if len(manifests) < 2 {
		t.Fatalf("found %v: want the example's and ldap's manifests", manifests)
	}
	for _, p := range manifests {
		m, err := manifest.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		want := release.Containerfile(m)
		path := filepath.Join("../../packaging/containers", "integration-"+m.Name, "Containerfile")
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s is not the built-in Containerfile for %s (%v): run go test ./internal/release -run Containerfiles -update\n--- have\n%s\n--- want\n%s", path, p, err, got, want)
		}
	}
}
