package trust_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/collectorhq/collector/engine/enginetest"
	"github.com/collectorhq/collector/engine/podman"
	"github.com/collectorhq/collector/internal/release"
)

// env holds the real components the tests share: a registry on 127.0.0.1,
// a private Podman service, the example image built by packaging/images.sh
// and pushed, and two cosign key pairs.
var env struct {
	stack    *enginetest.Stack
	dir      string
	registry *enginetest.Registry
	podman   *enginetest.Podman
	eng      *podman.Engine
	local    string // the example image in the private store
	localID  string
	busybox  string // another image, pushed by the harness
	keyA     *release.KeyPair
	keyB     *release.KeyPair
}

const keyPassword = "test-password"

func TestMain(m *testing.M) { enginetest.Main(m, "trust", setup, teardown) }

func setup() error {
	s, err := enginetest.StartStack("ctrust-", false)
	env.stack = s
	if err != nil {
		return err
	}
	env.registry, env.podman, env.dir = s.Registry, s.Podman, s.Dir
	if env.eng, err = podman.New(context.Background(), env.podman.URI(), podman.WithSecretDir(s.SecretDir)); err != nil {
		return err
	}
	if env.busybox, err = enginetest.BuildTestImage(env.podman, env.registry.Addr); err != nil {
		return err
	}
	env.local = "localhost/collector-test/integration-example:test"
	if env.localID, err = buildExample("test"); err != nil {
		return err
	}
	if env.keyA, err = release.GenerateKeyPair([]byte(keyPassword)); err != nil {
		return err
	}
	env.keyB, err = release.GenerateKeyPair([]byte(keyPassword))
	return err
}

func teardown() {
	if env.eng != nil {
		env.eng.Close()
	}
	env.stack.Stop()
}

func need(t testing.TB) {
	t.Helper()
	enginetest.Need(t)
}

// podmanCommand is the PODMAN value for packaging/images.sh: the CLI on
// the private service's storage.
func podmanCommand() string {
	d := env.podman.Dir
	return fmt.Sprintf("podman --root %s --runroot %s --runtime runc", filepath.Join(d, "root"), filepath.Join(d, "runroot"))
}

// buildExample builds the integration-example image with packaging/images.sh
// into the private store, tagged localhost/collector-test/integration-example:VERSION,
// and returns its image ID.
func buildExample(version string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "packaging", "images.sh")
	cmd := exec.Command("bash", script, "integration-example")
	cmd.Env = append(os.Environ(),
		"PODMAN="+podmanCommand(),
		"REGISTRY=localhost/collector-test",
		"VERSION="+version,
		"COMMIT=0123456789ab",
		"CONTAINERS_CONF="+filepath.Join(env.podman.Dir, "containers.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(env.podman.Dir, "registries.conf"),
		"TMPDIR="+filepath.Join(env.podman.Dir, "tmp"),
	)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("images.sh: %v: %s", err, stderr)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[0] != "integration-example" {
		return "", fmt.Errorf("images.sh printed %q, want \"integration-example TAG ID\"", out)
	}
	return f[2], nil
}
