package trust

import (
	"context"
	"fmt"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
)

// Labels returns the labels of a verified image's config (ref is the
// name@sha256:... Verify returned): what an integration declares about
// itself, e.g. its config schema. Read only after Verify, so a label is
// the signed image's word.
func (v *Verifier) Labels(ctx context.Context, ref string) (map[string]string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, &RefusalError{Image: ref, Reason: ErrInvalidReference, Detail: err.Error()}
	}
	if _, ok := named.(reference.Canonical); !ok {
		return nil, &RefusalError{Image: ref, Reason: ErrInvalidReference, Detail: "labels are read by digest, from a verified image"}
	}
	sys := v.systemContext(named)
	src, err := openSource(ctx, sys, named)
	if err != nil {
		return nil, v.refuse(ref, "", err)
	}
	defer src.Close()
	img, err := image.FromUnparsedImage(ctx, sys, image.UnparsedInstance(src, nil))
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", ref, err)
	}
	info, err := img.Inspect(ctx)
	if err != nil {
		return nil, fmt.Errorf("read image config of %s: %w", ref, err)
	}
	return info.Labels, nil
}
