package trust_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integrations/example"
	"github.com/collectorhq/collector/internal/release"
	"github.com/collectorhq/collector/trust"
)

var insecure = release.Options{Insecure: true}

// verifyAndPull is what the collector does with a verifier: Verify, then
// pull by digest only what it accepted.
func verifyAndPull(ctx context.Context, v *trust.Verifier, eng engine.Engine, ref string) (string, error) {
	digestRef, err := v.Verify(ctx, ref)
	if err != nil {
		return "", err
	}
	if _, err := eng.PullImage(ctx, digestRef, engine.PullOptions{Insecure: true}); err != nil {
		return "", err
	}
	return digestRef, nil
}

// push copies the example image from the private store to the test
// registry as repo:tag (under collector-test/) and returns the reference.
func push(t *testing.T, local, repoTag string) string {
	t.Helper()
	ref := env.registry.Addr + "/collector-test/" + repoTag
	if _, err := env.podman.Run("push", "--quiet", "--tls-verify=false", local, "docker://"+ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func sign(t *testing.T, ref string, key *release.KeyPair) string {
	t.Helper()
	d, err := release.Sign(context.Background(), ref, key.Private, []byte(keyPassword), insecure)
	if err != nil {
		t.Fatalf("sign %s: %v", ref, err)
	}
	return d
}

// verifier trusts keyA for everything under the registry's collector-test/
// namespace and rejects everything else.
func verifier(t *testing.T, logger *slog.Logger, policy []byte) *trust.Verifier {
	t.Helper()
	if policy == nil {
		policy = trust.SigstorePolicy(env.keyA.Public, env.registry.Addr+"/collector-test")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v, err := trust.New(trust.Config{Policy: policy, InsecureRegistries: []string{env.registry.Addr}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// assertNotPulled checks the private store holds nothing of ref's
// repository. (ImageExists is asked for tags only: for name@digest Podman
// answers true when any repository's image has that digest, and the tests'
// images share content.)
func assertNotPulled(t *testing.T, ref string) {
	t.Helper()
	ctx := context.Background()
	if !strings.Contains(ref, "@") {
		if ok, err := env.eng.ImageExists(ctx, ref); err != nil || ok {
			t.Errorf("ImageExists(%s) = %v, %v after a refusal; want false", ref, ok, err)
		}
	}
	repo := ref[:strings.LastIndexAny(ref, ":@")]
	out, err := env.podman.Run("images", "--format", "{{.Repository}}")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, repo) {
		t.Errorf("podman images lists %s after a refusal:\n%s", repo, out)
	}
}

// refused checks Verify and VerifyAndPull refuse ref with want, with a
// message naming the reason, and that nothing was pulled.
func refused(t *testing.T, v *trust.Verifier, ref string, want error) {
	t.Helper()
	got, err := verifyAndPull(context.Background(), v, env.eng, ref)
	if !errors.Is(err, want) {
		t.Fatalf("VerifyAndPull(%s) = %q, %v; want %v", ref, got, err, want)
	}
	var re *trust.RefusalError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), want.Error()) || !strings.Contains(err.Error(), ref) {
		t.Errorf("error %q does not name the image and the reason %q", err, want)
	}
	t.Logf("refused as expected: %v", err)
	assertNotPulled(t, ref)
}

func TestSignedImageIsPulledAndRunsByDigest(t *testing.T) {
	need(t)
	ctx := context.Background()
	ref := push(t, env.local, "example:1.0")
	signed := sign(t, ref, env.keyA)
	if n, err := verifyWithRelease(ref, env.keyA); err != nil || n != 1 {
		t.Fatalf("collector-release verify = %d, %v", n, err)
	}
	v := verifier(t, nil, nil)
	digestRef, err := verifyAndPull(ctx, v, env.eng, ref)
	if err != nil {
		t.Fatal(err)
	}
	if digestRef != signed || !strings.Contains(digestRef, "@sha256:") {
		t.Errorf("digest ref = %s, want the signed %s", digestRef, signed)
	}
	img, err := env.eng.InspectImage(ctx, digestRef)
	if err != nil {
		t.Fatal(err)
	}
	if img.Labels["org.opencontainers.image.revision"] != "0123456789ab" || img.Labels["org.opencontainers.image.version"] != "test" {
		t.Errorf("labels = %v", img.Labels)
	}
	// Verifying the digest reference itself also passes.
	if again, err := v.Verify(ctx, digestRef); err != nil || again != digestRef {
		t.Errorf("Verify(%s) = %s, %v", digestRef, again, err)
	}
	runExample(t, digestRef)
}

// runExample runs the example integration from digestRef as a hardened
// job container with its config as a secret, and checks its output.
func runExample(t *testing.T, digestRef string) {
	ctx := context.Background()
	const token = "trust-test-token"
	secret := "trust-test-config"
	if err := env.eng.CreateSecret(ctx, secret, []byte(`{"count": 3, "token": "`+token+`"}`)); err != nil {
		t.Fatal(err)
	}
	defer env.eng.RemoveSecret(ctx, secret)
	id, err := env.eng.CreateContainer(ctx, &engine.ContainerSpec{
		Name:            "trust-test-example",
		Image:           digestRef,
		Secrets:         []engine.SecretMount{{Name: secret, Target: "/run/collector/config.json", Mode: 0o400, UID: 65532, GID: 65532}},
		Network:         "none",
		ReadOnlyRootfs:  true,
		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		Ulimits:         []engine.Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}, {Name: "nproc", Soft: 1024, Hard: 1024}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer env.eng.RemoveContainer(ctx, id, true)
	if err := env.eng.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	code, err := env.eng.WaitContainer(wctx, id)
	var stdout, stderr bytes.Buffer
	env.eng.ContainerLogs(ctx, id, false, &stdout, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("example exited %d, %v; stderr: %s", code, err, stderr.String())
	}
	c, err := env.eng.InspectContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Image, "sha256:") {
		t.Errorf("container created from %q, want a digest reference or an image ID", c.Image)
	}
	if !strings.Contains(stdout.String(), example.TokenProof(token)) || strings.Count(stdout.String(), "\n") != 4 {
		t.Errorf("stdout = %s; want the proof and 3 entities", stdout.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), token) {
		t.Error("the token leaked into the output")
	}
}

func verifyWithRelease(ref string, key *release.KeyPair) (int, error) {
	_, n, err := release.Verify(context.Background(), ref, key.Public, insecure)
	return n, err
}

func TestUnsignedImageIsRefused(t *testing.T) {
	need(t)
	ref := push(t, env.local, "unsigned:1.0")
	refused(t, verifier(t, nil, nil), ref, trust.ErrUnsigned)
}

func TestImageSignedByAnotherKeyIsRefused(t *testing.T) {
	need(t)
	ref := push(t, env.local, "otherkey:1.0")
	sign(t, ref, env.keyB)
	if _, err := verifyWithRelease(ref, env.keyA); !errors.Is(err, release.ErrNoValidSignature) {
		t.Errorf("collector-release verify with the wrong key = %v", err)
	}
	refused(t, verifier(t, nil, nil), ref, trust.ErrUntrustedSigner)
}

func TestMovedTagIsRefused(t *testing.T) {
	need(t)
	ctx := context.Background()
	ref := push(t, env.local, "moved:1.0")
	signed := sign(t, ref, env.keyA)
	v := verifier(t, nil, nil)
	if _, err := v.Verify(ctx, ref); err != nil {
		t.Fatalf("before the move: %v", err)
	}
	// The tag is moved to other content: the new digest has no signature.
	if _, err := env.podman.Run("push", "--quiet", "--tls-verify=false", "localhost/collector-test/busybox:1", "docker://"+ref); err != nil {
		t.Fatal(err)
	}
	refused(t, v, ref, trust.ErrUnsigned)

	// An attacker also copies the old signature onto the new digest: the
	// signature verifies, but it is for the old digest.
	moved, err := release.Resolve(ctx, ref, insecure)
	if err != nil {
		t.Fatal(err)
	}
	copyTag(t, sigTag(signed), sigTag(moved.String()))
	refused(t, v, ref, trust.ErrDigestMismatch)
}

// sigTag is the cosign signature tag of a digest reference.
func sigTag(digestRef string) string {
	repo, dig, _ := strings.Cut(digestRef, "@")
	return repo + ":" + strings.Replace(dig, ":", "-", 1) + ".sig"
}

func copyTag(t *testing.T, from, to string) {
	t.Helper()
	src, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.NewTag(to, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	// Write, not Tag: the blobs may live in another repository.
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	// One layer at a time: go-containerregistry v0.20.7 updates a
	// writer's scopes unguarded when a layer is mounted from another
	// repository, while its other upload workers read them (a data race
	// the race detector reported in CI).
	if err := remote.Write(dst, img, remote.WithJobs(1)); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyRejectsOtherRepositories(t *testing.T) {
	need(t)
	ref := push(t, env.local, "example:1.0")
	sign(t, ref, env.keyA)
	// The policy trusts only another repository; the default rejects.
	policy := trust.SigstorePolicy(env.keyA.Public, env.registry.Addr+"/collector-test/somewhere-else")
	refused(t, verifier(t, nil, policy), ref, trust.ErrPolicyRejected)
}

func TestSignatureForAnotherRepositoryIsRefused(t *testing.T) {
	need(t)
	ctx := context.Background()
	a := push(t, env.local, "repo-a:1.0")
	b := push(t, env.local, "repo-b:1.0")
	signedA := sign(t, a, env.keyA)
	digestB, err := release.Resolve(ctx, b, insecure)
	if err != nil {
		t.Fatal(err)
	}
	// Same content, same digest: A's signature copied into B's repository.
	copyTag(t, sigTag(signedA), sigTag(digestB.String()))
	refused(t, verifier(t, nil, nil), b, trust.ErrSignatureMismatch)
}

func TestRegistryUnreachable(t *testing.T) {
	need(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	v, err := trust.New(trust.Config{Policy: trust.SigstorePolicy(env.keyA.Public, addr), InsecureRegistries: []string{addr}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	refused(t, v, addr+"/collector-test/example:1.0", trust.ErrRegistryUnreachable)
}

func TestMissingImage(t *testing.T) {
	need(t)
	refused(t, verifier(t, nil, nil), env.registry.Addr+"/collector-test/never-pushed:1.0", trust.ErrImageNotFound)
}

// TestRegistryServingOtherContent puts a proxy in front of the registry
// that answers a request for one manifest digest with another manifest:
// the content is not what the digest (and the signature) names.
func TestRegistryServingOtherContent(t *testing.T) {
	need(t)
	ctx := context.Background()
	good := push(t, env.local, "swapped:1.0")
	signed := sign(t, good, env.keyA)
	other, err := release.Resolve(ctx, env.busybox, insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, goodDigest, _ := strings.Cut(signed, "@")
	_, otherDigest, _ := strings.Cut(other.String(), "@")
	target, _ := url.Parse("http://" + env.registry.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/manifests/"+goodDigest) {
			r.URL.Path = "/v2/collector-test/busybox/manifests/" + otherDigest
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	v, err := trust.New(trust.Config{Policy: trust.SigstorePolicy(env.keyA.Public, addr), InsecureRegistries: []string{addr}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	refused(t, v, addr+"/collector-test/swapped@"+goodDigest, trust.ErrDigestMismatch)
}

func TestAcceptAnythingIsWarnedAtEveryUse(t *testing.T) {
	need(t)
	ref := push(t, env.local, "anything:1.0")
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	v := verifier(t, logger, []byte(`{"default": [{"type": "insecureAcceptAnything"}]}`))
	for range 2 {
		if _, err := v.Verify(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 || !strings.Contains(logs.String(), "insecureAcceptAnything") {
		t.Errorf("want 2 warnings naming insecureAcceptAnything, got:\n%s", logs.String())
	}
	// A policy that verifies logs nothing.
	logs.Reset()
	sign(t, ref, env.keyA)
	if _, err := verifier(t, logger, nil).Verify(context.Background(), ref); err != nil || logs.Len() != 0 {
		t.Errorf("Verify = %v, logs %q", err, logs.String())
	}
}

// TestImagesReproducible builds the example image a second time from the
// same source and checks the image ID (the config digest, which covers the
// layers' digests) is the same.
func TestImagesReproducible(t *testing.T) {
	need(t)
	if _, err := env.podman.Run("rmi", "--force", env.local); err != nil {
		t.Fatal(err)
	}
	id, err := buildExample("test")
	if err != nil {
		t.Fatal(err)
	}
	if id != env.localID {
		t.Errorf("second build gave image %s, first %s: the build is not reproducible", id, env.localID)
	}
	out, err := env.podman.Run("image", "inspect", "--format", "{{.Created}} {{.Config.User}}", env.local)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "1970-01-01 00:00:00") || !strings.Contains(out, "65532") {
		t.Errorf("image created %q: want the epoch and user 65532", out)
	}
}
