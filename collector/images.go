package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/trust"
)

// verifiedImages pulls only what the signature policy accepts, by digest.
type verifiedImages struct {
	v        *trust.Verifier
	eng      engine.Engine
	insecure []string
}

// TrustImages is the ImagesFunc of production: containers/image's
// sigstore policy check before every pull (package trust).
func TrustImages(policy json.RawMessage, insecure []string, eng engine.Engine, log *slog.Logger) (Images, error) {
	v, err := trust.New(trust.Config{Policy: policy, InsecureRegistries: insecure, Logger: log, UserAgent: "collector/" + buildinfo.Version})
	if err != nil {
		return nil, err
	}
	return &verifiedImages{v: v, eng: eng, insecure: insecure}, nil
}

// VerifyAndPull verifies ref, pulls it by digest and returns name@sha256:...
// The signature is checked on every call; the pull is skipped when the
// engine already holds that digest (content addressed, so it is the image
// just verified), which saves a registry round trip per job.
// A refused image is not pulled.
func (i *verifiedImages) VerifyAndPull(ctx context.Context, ref string) (string, error) {
	digestRef, err := i.v.Verify(ctx, ref)
	if err != nil {
		return "", err
	}
	host, _, _ := strings.Cut(ref, "/")
	if _, err := (presentOrPull{i.eng}).PullImage(ctx, digestRef, engine.PullOptions{Insecure: slices.Contains(i.insecure, host)}); err != nil {
		return "", fmt.Errorf("pull verified image %s: %w", digestRef, err)
	}
	return digestRef, nil
}

// presentOrPull pulls a digest reference only if the engine lacks it.
type presentOrPull struct{ eng engine.Engine }

func (p presentOrPull) PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error) {
	if img, err := p.eng.InspectImage(ctx, ref); err == nil && strings.Contains(ref, "@sha256:") {
		return img, nil
	}
	return p.eng.PullImage(ctx, ref, opts)
}
