package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/trust"
)

// verifiedImages pulls only what the signature policy accepts, by digest.
type verifiedImages struct {
	v        verifier
	eng      engine.Engine
	insecure []string
}

// verifier is the signature check (trust.Verifier): it refuses an image
// with a *trust.RefusalError.
type verifier interface {
	Verify(ctx context.Context, ref string) (string, error)
}

// TrustImages is the ImagesFunc of production: containers/image's
// sigstore policy check before every pull (package trust). The check
// reaches registries through the operator's proxy, trusting the extra CA;
// the pull itself is the engine's, with the engine's own proxy settings.
func TrustImages(policy json.RawMessage, insecure []string, eg egress.Settings, eng engine.Engine, log *slog.Logger) (Images, error) {
	px, err := eg.ParseProxy()
	if err != nil {
		return nil, err
	}
	tc := trust.Config{Policy: policy, InsecureRegistries: insecure, Logger: log, UserAgent: "collector/" + buildinfo.Version, ExtraCA: eg.ExtraCA}
	if px != nil {
		tc.Proxy = px.URLFunc()
	}
	v, err := trust.New(tc)
	if err != nil {
		return nil, err
	}
	return &verifiedImages{v: v, eng: eng, insecure: insecure}, nil
}

// VerifyAndPull verifies ref, pulls it by digest and returns name@sha256:...
// The signature is checked on every call; the pull is skipped when the
// engine already holds that digest (content addressed, so it is the image
// just verified), which saves a registry round trip per job.
// A refused image is not pulled. Only a refusal is a *trust.RefusalError:
// a pull the engine could not answer is engine.ErrUnavailable, which the
// runner retries once the engine answers.
func (i *verifiedImages) VerifyAndPull(ctx context.Context, ref string) (string, error) {
	digestRef, err := i.v.Verify(ctx, ref)
	if err != nil {
		return "", err
	}
	host, _, _ := strings.Cut(ref, "/")
	if _, err := (presentOrPull{i.eng}).PullImage(ctx, digestRef, engine.PullOptions{Insecure: slices.Contains(i.insecure, host)}); err != nil {
		return "", fmt.Errorf("pull verified image %s: %w", digestRef, i.pullError(ctx, err))
	}
	return digestRef, nil
}

// pullError classifies a failed pull: one cut half way (the engine's
// stream ends early: "unexpected EOF", which the backends cannot tell
// from other errors) while the engine does not answer a check is the
// engine unavailable.
func (i *verifiedImages) pullError(ctx context.Context, err error) error {
	if errors.Is(err, engine.ErrUnavailable) || ctx.Err() != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, engineCheckTimeout)
	defer cancel()
	if _, ierr := i.eng.Info(cctx); ierr != nil && ctx.Err() == nil {
		return fmt.Errorf("%w (it stopped answering during the pull: %v): %w", engine.ErrUnavailable, ierr, err)
	}
	return err
}

// engineCheckTimeout bounds the check that the engine answers.
const engineCheckTimeout = 10 * time.Second

// presentOrPull pulls a digest reference only if the engine lacks it.
type presentOrPull struct{ eng engine.Engine }

func (p presentOrPull) PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error) {
	img, err := p.eng.InspectImage(ctx, ref)
	switch {
	case err == nil && strings.Contains(ref, "@sha256:"):
		return img, nil
	case errors.Is(err, engine.ErrUnavailable):
		return nil, err // a pull would meet the same closed socket
	}
	return p.eng.PullImage(ctx, ref, opts)
}
