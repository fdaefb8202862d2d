package trust

import (
	"context"
	"fmt"

	"github.com/collectorhq/collector/engine"
)

// Puller is the part of an engine VerifyAndPull uses (engine.Engine has it).
type Puller interface {
	PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error)
}

// VerifyAndPull verifies ref and only then asks eng to pull it by digest.
// It returns the digest reference (name@sha256:...) that containers must be
// created from. A refused image is not pulled.
func (v *Verifier) VerifyAndPull(ctx context.Context, eng Puller, ref string, opts engine.PullOptions) (string, error) {
	digestRef, err := v.Verify(ctx, ref)
	if err != nil {
		return "", err
	}
	if _, err := eng.PullImage(ctx, digestRef, opts); err != nil {
		return "", fmt.Errorf("pull verified image %s: %w", digestRef, err)
	}
	return digestRef, nil
}
