package trust_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The collector's installer and runner link this package: it must verify
// with containers/image alone and never pull in cosign (tens of MB).
func TestTrustLinksNoCosign(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "containers_image_openpgp", "github.com/collectorhq/collector/trust").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	deps := strings.Fields(string(out))
	var sawSignature bool
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/sigstore/cosign") || strings.HasPrefix(d, "github.com/collectorhq/collector/internal/release") {
			t.Errorf("trust links %s: it must not", d)
		}
		sawSignature = sawSignature || d == "go.podman.io/image/v5/signature"
	}
	if !sawSignature {
		t.Error("trust does not link go.podman.io/image/v5/signature: the dependency list is wrong")
	}
}
