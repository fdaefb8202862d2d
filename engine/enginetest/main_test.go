package enginetest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/auto"
	"github.com/collectorhq/collector/engine/docker"
	"github.com/collectorhq/collector/engine/enginetest"
	"github.com/collectorhq/collector/engine/podman"
)

// env holds the real components every test of this package shares.
var env struct {
	stack    *enginetest.Stack
	podman   *enginetest.Podman
	dockerd  *enginetest.Dockerd
	registry *enginetest.Registry
	image    string
	digest   string
}

func TestMain(m *testing.M) { enginetest.Main(m, "engine", setup, teardown) }

func setup() error {
	s, err := enginetest.StartStack("collector-engines-", true)
	env.stack = s
	if err != nil {
		return err
	}
	env.registry, env.podman, env.dockerd = s.Registry, s.Podman, s.Dockerd
	if env.image, err = enginetest.BuildTestImage(env.podman, env.registry.Addr); err != nil {
		return err
	}
	env.digest, err = enginetest.PushedDigestRef(env.podman, env.image)
	return err
}

func teardown() { env.stack.Stop() }

func need(t testing.TB) { t.Helper(); enginetest.Need(t) }

// secretDir is a per-test directory on /dev/shm, a tmpfs, for the Docker
// backend's secret files.
func secretDir(t testing.TB) string {
	d, err := os.MkdirTemp("/dev/shm", "collector-secrets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func options(kind engine.Kind, storage []string, open func(secretDir string) (engine.Engine, error)) enginetest.Options {
	return enginetest.Options{Image: env.image, ImageDigest: env.digest, Registry: env.registry.Addr, Insecure: true, Kind: kind,
		StorageDirs: storage, WithSecretDir: open}
}

// podmanNoOOM: Podman 4.3's service on this host (runc, cgroup v2) leaves
// OOMKilled false for a container the kernel killed at its limit.
const podmanNoOOM = "Podman 4.3 with runc leaves OOMKilled false"

func openPodman(secretDir string) (engine.Engine, error) {
	return podman.New(context.Background(), env.podman.URI(), podman.WithSecretDir(secretDir))
}

func openDockerd(secretDir string) (engine.Engine, error) {
	return docker.New(context.Background(), env.dockerd.URI(), secretDir)
}

func openPodmanCompat(secretDir string) (engine.Engine, error) {
	return docker.New(context.Background(), env.podman.URI(), secretDir)
}

func TestPodmanBackend(t *testing.T) {
	need(t)
	eng, err := openPodman(secretDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	o := options(engine.KindPodman, env.podman.StorageDirs(), openPodman)
	o.NoOOMReport = podmanNoOOM
	enginetest.Run(t, eng, o)
}

func TestDockerBackendOnDockerd(t *testing.T) {
	need(t)
	eng, err := openDockerd(secretDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	enginetest.Run(t, eng, options(engine.KindDocker, env.dockerd.StorageDirs(), openDockerd))
}

func TestDockerBackendOnPodmanCompat(t *testing.T) {
	need(t)
	eng, err := openPodmanCompat(secretDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	o := options(engine.KindDocker, env.podman.StorageDirs(), openPodmanCompat)
	o.NoOOMReport = podmanNoOOM
	enginetest.Run(t, eng, o)
}

func TestOpenDetectsEachEngine(t *testing.T) {
	need(t)
	ctx := context.Background()
	for _, tc := range []struct {
		host string
		kind engine.Kind
	}{
		{env.podman.URI(), engine.KindPodman},
		{env.podman.Socket, engine.KindPodman},
		{env.dockerd.URI(), engine.KindDocker},
	} {
		eng, err := auto.Open(ctx, engine.Config{Host: tc.host, SecretDir: secretDir(t)})
		if err != nil {
			t.Fatalf("Open(%s): %v", tc.host, err)
		}
		if eng.Kind() != tc.kind {
			t.Errorf("Open(%s) kind = %s, want %s", tc.host, eng.Kind(), tc.kind)
		}
		eng.Close()
	}
	// CONTAINER_HOST is honoured when no host is given.
	getenv := func(k string) string {
		if k == "CONTAINER_HOST" {
			return env.dockerd.URI()
		}
		return ""
	}
	ep, err := engine.Detect(ctx, engine.Config{Getenv: getenv})
	if err != nil || ep.Kind != engine.KindDocker || ep.Socket != env.dockerd.Socket {
		t.Errorf("Detect with CONTAINER_HOST = %+v, %v", ep, err)
	}
	// Podman forced on a Docker socket is refused.
	if _, err := engine.Detect(ctx, engine.Config{Kind: engine.KindPodman, Host: env.dockerd.URI()}); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Detect(kind podman, dockerd socket) = %v, want ErrUnavailable", err)
	}
	// Docker forced on Podman's socket speaks the compatible API.
	eng, err := auto.Open(ctx, engine.Config{Kind: engine.KindDocker, Host: env.podman.URI(), SecretDir: secretDir(t)})
	if err != nil || eng.Kind() != engine.KindDocker {
		t.Fatalf("Open(kind docker, podman socket) = %v", err)
	}
	eng.Close()
}

func TestOpenUnreachableNamesSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	_, err := auto.Open(context.Background(), engine.Config{Host: "unix://" + sock})
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Open(missing socket) = %v, want ErrUnavailable", err)
	}
	for _, want := range []string{sock, "systemctl enable --now podman.socket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}
