package collector

import (
	"context"
	"encoding/json"
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
func (i *verifiedImages) VerifyAndPull(ctx context.Context, ref string) (string, error) {
	host, _, _ := strings.Cut(ref, "/")
	return i.v.VerifyAndPull(ctx, i.eng, ref, engine.PullOptions{Insecure: slices.Contains(i.insecure, host)})
}
