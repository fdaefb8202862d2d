package trust

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/archive"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// Mirror is a registry mirror: images whose name starts with Prefix (a
// registry host[:port], optionally with a repository path) are read from
// Locations first, in order, then from where the name says. Signatures
// are checked against the name, never the mirror: a mirror serves the
// original repository's signed content or nothing.
type Mirror struct {
	Prefix    string
	Locations []string
}

// registriesConf is the registries.conf (v2) of the mirrors: one
// [[registry]] per prefix, its mirrors insecure where insecure says.
func registriesConf(mirrors []Mirror, insecure func(hostport string) bool) string {
	var b strings.Builder
	for _, m := range mirrors {
		fmt.Fprintf(&b, "[[registry]]\nprefix = %s\nlocation = %s\n", strconv.Quote(m.Prefix), strconv.Quote(m.Prefix))
		if insecure(hostOf(m.Prefix)) {
			b.WriteString("insecure = true\n")
		}
		for _, loc := range m.Locations {
			fmt.Fprintf(&b, "[[registry.mirror]]\nlocation = %s\n", strconv.Quote(loc))
			if insecure(hostOf(loc)) {
				b.WriteString("insecure = true\n")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// hostOf is the host[:port] a registry location starts with.
func hostOf(location string) string {
	host, _, _ := strings.Cut(location, "/")
	return host
}

// insecureHost says whether a registry host[:port] is reached without TLS
// checks.
func (v *Verifier) insecureHost(hostport string) bool {
	for _, h := range v.insecure {
		if h == hostport {
			return true
		}
	}
	return v.loopback && isLoopback(hostport)
}

// ImageID is the ID an engine gives the image of digestRef once it holds
// it: the digest of its config (for a manifest list, of the instance for
// this machine's platform). It reads the manifest, not the layers.
func (v *Verifier) ImageID(ctx context.Context, digestRef string) (string, error) {
	named, err := parseDigestRef(digestRef)
	if err != nil {
		return "", err
	}
	sys := v.systemContext(named)
	src, err := openSource(ctx, sys, named)
	if err != nil {
		return "", err
	}
	defer src.Close()
	man, mt, err := src.GetManifest(ctx, nil)
	if err != nil {
		return "", err
	}
	var instance *digest.Digest
	if manifest.MIMETypeIsMultiImage(mt) {
		list, err := manifest.ListFromBlob(man, mt)
		if err != nil {
			return "", err
		}
		d, err := list.ChooseInstance(sys)
		if err != nil {
			return "", err
		}
		instance = &d
	}
	img, err := image.FromUnparsedImage(ctx, sys, image.UnparsedInstance(src, instance))
	if err != nil {
		return "", err
	}
	return img.ConfigInfo().Digest.String(), nil
}

// Archive copies the image of digestRef (a reference Verify returned)
// from its registry, or a mirror, into a docker-archive at path (which
// must not exist), tagged name:sha256-<hex of the manifest digest>, for an
// engine to load. Its own connections carry it: the proxy, the extra CA
// and the mirrors of the Config. The copy checks the signature policy on
// what it reads, so a registry that answers Verify with one image and the
// copy with another is refused, as is a mirror with unsigned content.
func (v *Verifier) Archive(ctx context.Context, digestRef, path string) error {
	named, err := parseDigestRef(digestRef)
	if err != nil {
		return err
	}
	srcRef, err := docker.NewReference(named)
	if err != nil {
		return err
	}
	tagged, err := reference.WithTag(reference.TrimNamed(named), strings.Replace(named.Digest().String(), ":", "-", 1))
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("archive %s: exists", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	destRef, err := archive.NewReference(path, tagged)
	if err != nil {
		return err
	}
	pc, err := signature.NewPolicyContext(v.policy.policy)
	if err != nil {
		return err
	}
	defer pc.Destroy()
	// Layers are decompressed into the archive through temporary files:
	// beside it, not in /var/tmp (read-only in the runner's container).
	tmp := filepath.Dir(path)
	src := v.systemContext(named)
	src.BigFilesTemporaryDir = tmp
	_, err = copy.Image(ctx, pc, destRef, srcRef, &copy.Options{SourceCtx: src,
		DestinationCtx: &types.SystemContext{BigFilesTemporaryDir: tmp}, ImageListSelection: copy.CopySystemImage,
		// Checked by the policy as they are read; an archive keeps none.
		RemoveSignatures: true})
	if err != nil {
		os.Remove(path)
		var local *fs.PathError
		if errors.As(err, &local) {
			return fmt.Errorf("fetch %s into %s: %w", digestRef, tmp, err) // the disk here, not the image
		}
		return v.refuse(digestRef, named.Digest().String(), err)
	}
	return nil
}

// parseDigestRef parses name@sha256:...
func parseDigestRef(ref string) (reference.Canonical, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, &RefusalError{Image: ref, Reason: ErrInvalidReference, Detail: err.Error()}
	}
	c, ok := named.(reference.Canonical)
	if !ok {
		return nil, &RefusalError{Image: ref, Reason: ErrInvalidReference, Detail: errors.New("want name@sha256:...").Error()}
	}
	return c, nil
}
