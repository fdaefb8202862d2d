package release_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/collectorhq/collector/engine/enginetest"
	"github.com/collectorhq/collector/internal/release"
)

var env struct {
	dir      string
	registry *enginetest.Registry
}

func TestMain(m *testing.M) {
	enginetest.Main(m, "release", setup, func() {
		env.registry.Stop()
		os.RemoveAll(env.dir)
	})
}

func setup() error {
	if err := enginetest.Require("docker-registry"); err != nil {
		return err
	}
	var err error
	if env.dir, err = os.MkdirTemp("", "crelease-"); err != nil {
		return err
	}
	env.registry, err = enginetest.StartRegistry(filepath.Join(env.dir, "registry"))
	return err
}

func need(t *testing.T) {
	t.Helper()
	enginetest.Need(t)
}

// pushRandom pushes a small random image as repo:tag and returns its reference.
func pushRandom(t *testing.T, repoTag string) string {
	t.Helper()
	ref := env.registry.Addr + "/" + repoTag
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

var insecure = release.Options{Insecure: true}

func TestKeyPairFiles(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "cosign")
	priv, pub, err := release.WriteKeyPair(prefix, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v; want %v", path, err, st.Mode().Perm(), mode)
		}
	}
	key, _ := os.ReadFile(priv)
	if !strings.Contains(string(key), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Errorf("private key is not an encrypted cosign key:\n%s", key)
	}
	if _, err := release.LoadSigner(key, []byte("pw")); err != nil {
		t.Errorf("LoadSigner(right password) = %v", err)
	}
	if _, err := release.LoadSigner(key, []byte("wrong")); !errors.Is(err, release.ErrBadKey) {
		t.Errorf("LoadSigner(wrong password) = %v, want ErrBadKey", err)
	}
	if _, _, err := release.WriteKeyPair(prefix, []byte("pw")); !errors.Is(err, os.ErrExist) {
		t.Errorf("WriteKeyPair over existing files = %v, want ErrExist", err)
	}
}

func TestSignThenVerify(t *testing.T) {
	need(t)
	ctx := context.Background()
	ref := pushRandom(t, "release-test/app:1")
	kp, err := release.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := release.Verify(ctx, ref, kp.Public, insecure); !errors.Is(err, release.ErrNoValidSignature) {
		t.Errorf("Verify(unsigned) = %v, want ErrNoValidSignature", err)
	}
	signed, err := release.Sign(ctx, ref, kp.Private, []byte("pw"), insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := release.Resolve(ctx, ref, insecure)
	if err != nil || signed != d.String() {
		t.Errorf("signed %s, tag resolves to %v (%v)", signed, d, err)
	}
	// Signing twice with the same key adds no second signature.
	if _, err := release.Sign(ctx, ref, kp.Private, []byte("pw"), insecure); err != nil {
		t.Fatal(err)
	}
	got, n, err := release.Verify(ctx, ref, kp.Public, insecure)
	if err != nil || got != signed || n != 1 {
		t.Errorf("Verify = %s, %d, %v; want %s, 1 signature", got, n, err, signed)
	}
	// The signature is the cosign attachment tag next to the image.
	sigTag := strings.Replace(signed, "@sha256:", ":sha256-", 1) + ".sig"
	st, err := name.NewTag(sigTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(st); err != nil {
		t.Errorf("no signature tag %s: %v", sigTag, err)
	}
	other, _ := release.GenerateKeyPair([]byte("pw"))
	if _, _, err := release.Verify(ctx, ref, other.Public, insecure); !errors.Is(err, release.ErrNoValidSignature) {
		t.Errorf("Verify(other key) = %v, want ErrNoValidSignature", err)
	}
}

func TestSignWrongPassword(t *testing.T) {
	kp, _ := release.GenerateKeyPair([]byte("pw"))
	if _, err := release.Sign(context.Background(), "127.0.0.1:1/x:1", kp.Private, []byte("nope"), insecure); !errors.Is(err, release.ErrBadKey) {
		t.Errorf("Sign(wrong password) = %v, want ErrBadKey", err)
	}
}
