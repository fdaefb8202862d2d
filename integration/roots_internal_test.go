package integration

import (
	"crypto/x509"
	"os"
	"os/exec"
	"testing"

	"github.com/collectorhq/collector/internal/env"
)

// TestRootsWithoutASystemBundle: in a process that finds no CA bundle (a
// FROM-scratch image; here SSL_CERT_FILE and SSL_CERT_DIR point nowhere),
// the system pool still holds the embedded roots.
func TestRootsWithoutASystemBundle(t *testing.T) {
	if env.Get("ROOTS_CHILD") == "1" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			t.Fatalf("SystemCertPool: %v", err)
		}
		if n := len(pool.Subjects()); n < 100 { //nolint:staticcheck // a count is all the test needs
			t.Fatalf("the system pool holds %d roots without a bundle: the fallback is not in", n)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRootsWithoutASystemBundle$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ROOTS_CHILD=1", "SSL_CERT_FILE=/nonexistent/ca.pem", "SSL_CERT_DIR=/nonexistent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
