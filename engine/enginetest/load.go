package enginetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/archive"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/collectorhq/collector/engine"
)

// testLoad: a docker-archive the caller fetched itself loads into the
// engine, which then runs it by its ID in the form "sha256:<hex>" (the
// config digest, as the collector names an image it loaded); an archive
// that is not one fails the load.
func (s *suite) testLoad(t *testing.T) {
	ctx := ctxT(t)
	pulled, err := s.eng.PullImage(ctx, s.o.ImageDigest, engine.PullOptions{Insecure: s.o.Insecure})
	if err != nil {
		t.Fatalf("PullImage(%s): %v", s.o.ImageDigest, err)
	}
	tag := s.o.Registry + "/collector-test/loaded:" + uniq("t")
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := toArchive(ctx, s.o.ImageDigest, tag, path, s.o.Insecure); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.eng.LoadImage(ctx, f); err != nil {
		t.Fatalf("LoadImage: %v", err)
	}
	t.Cleanup(func() { s.eng.RemoveImage(context.Background(), tag, false) })
	loaded, err := s.eng.InspectImage(ctx, tag)
	if err != nil {
		t.Fatalf("InspectImage(%s) after the load: %v", tag, err)
	}
	id := "sha256:" + strings.TrimPrefix(loaded.ID, "sha256:")
	if strings.TrimPrefix(pulled.ID, "sha256:") != strings.TrimPrefix(loaded.ID, "sha256:") {
		t.Errorf("loaded image ID %s, the same image pulled has %s", loaded.ID, pulled.ID)
	}
	sp := s.spec(uniq("collector-load"), "sh", "-c", "echo loaded")
	sp.Image = id
	if code, out, errb := s.run(t, sp); code != 0 || strings.TrimSpace(out) != "loaded" {
		t.Errorf("a container of %s: exit %d, stdout %q, stderr %q", id, code, out, errb)
	}

	if err := s.eng.LoadImage(ctx, strings.NewReader("not a tar archive")); err == nil {
		t.Error("LoadImage of a non-archive succeeded")
	}
}

// toArchive copies ref from its registry into a docker-archive at path,
// tagged tag.
func toArchive(ctx context.Context, ref, tag, path string, insecure bool) error {
	src, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return err
	}
	dst, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return err
	}
	srcRef, err := docker.NewReference(src)
	if err != nil {
		return err
	}
	destRef, err := archive.NewReference(path, dst.(reference.NamedTagged))
	if err != nil {
		return err
	}
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		return err
	}
	defer pc.Destroy()
	sys := &types.SystemContext{}
	if insecure {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	_, err = copy.Image(ctx, pc, destRef, srcRef, &copy.Options{SourceCtx: sys, DestinationCtx: &types.SystemContext{}})
	return err
}
