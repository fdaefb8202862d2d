package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	// fetchDir, when set, is where the collector fetches images itself
	// (through its proxy, from its mirrors) for the engine to load.
	fetchDir string
}

// verifier is the signature check (trust.Verifier): it refuses an image
// with a *trust.RefusalError.
type verifier interface {
	Verify(ctx context.Context, ref string) (string, error)
	ImageID(ctx context.Context, digestRef string) (string, error)
	Archive(ctx context.Context, digestRef, path string) error
}

// ImagesConfig is what the image verifier is built from.
type ImagesConfig struct {
	Policy   json.RawMessage
	Insecure []string
	Egress   egress.Settings
	Engine   engine.Engine
	Log      *slog.Logger
	// FetchDir, on a disk, holds the archives of the images the collector
	// fetches itself when its egress has a proxy or mirrors, which the
	// engine's own pulls know nothing of. "" leaves every pull to the
	// engine (the daemon's upgrades and the installer: the collector's
	// own image, which the engine pulled to start the installer anyway).
	FetchDir string
}

// TrustImages is the ImagesFunc of production: containers/image's
// sigstore policy check before every pull (package trust). The check
// reaches registries through the operator's proxy and mirrors, trusting
// the extra CA; so does the pull with a FetchDir, otherwise the engine
// pulls with its own settings.
func TrustImages(c ImagesConfig) (Images, error) {
	eg := c.Egress
	px, err := eg.ParseProxy()
	if err != nil {
		return nil, err
	}
	tc := trust.Config{Policy: c.Policy, InsecureRegistries: c.Insecure, Logger: c.Log, UserAgent: "collector/" + buildinfo.Version, ExtraCA: eg.ExtraCA}
	if px != nil {
		tc.Proxy = px.URLFunc()
	}
	for _, m := range eg.Mirrors {
		tc.Mirrors = append(tc.Mirrors, trust.Mirror{Prefix: m.Prefix, Locations: m.Locations})
	}
	v, err := trust.New(tc)
	if err != nil {
		return nil, err
	}
	i := &verifiedImages{v: v, eng: c.Engine, insecure: c.Insecure}
	if eg.Fetches() {
		i.fetchDir = c.FetchDir
	}
	return i, nil
}

// VerifyAndPull verifies ref, pulls it by digest and returns the
// reference to create containers from: name@sha256:... when the engine
// pulled it, the image's ID (sha256:..., the digest of its config, read
// from the verified manifest) when the collector fetched it. The
// signature is checked on every call; the pull is skipped when the
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
	if i.fetchDir != "" {
		return i.fetch(ctx, digestRef)
	}
	host, _, _ := strings.Cut(ref, "/")
	if _, err := (presentOrPull{i.eng}).PullImage(ctx, digestRef, engine.PullOptions{Insecure: slices.Contains(i.insecure, host)}); err != nil {
		return "", fmt.Errorf("pull verified image %s: %w", digestRef, i.pullError(ctx, err))
	}
	return digestRef, nil
}

// fetch copies a verified image into an archive in fetchDir and loads it
// into the engine, unless the engine holds its ID already; it returns the
// ID, checked against the loaded image's.
func (i *verifiedImages) fetch(ctx context.Context, digestRef string) (string, error) {
	id, err := i.v.ImageID(ctx, digestRef)
	if err != nil {
		return "", fmt.Errorf("fetch verified image %s: %w", digestRef, err)
	}
	if img, err := i.eng.InspectImage(ctx, id); err == nil && sameID(img.ID, id) {
		return id, nil
	} else if errors.Is(err, engine.ErrUnavailable) {
		return "", err
	}
	dir, err := os.MkdirTemp(i.fetchDir, "fetch-")
	if err != nil {
		if err = os.MkdirAll(i.fetchDir, 0o700); err == nil {
			dir, err = os.MkdirTemp(i.fetchDir, "fetch-")
		}
		if err != nil {
			return "", fmt.Errorf("fetch verified image %s: %w", digestRef, err)
		}
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "image.tar")
	if err := i.v.Archive(ctx, digestRef, path); err != nil {
		return "", fmt.Errorf("fetch verified image %s: %w", digestRef, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := i.eng.LoadImage(ctx, f); err != nil {
		return "", fmt.Errorf("load verified image %s: %w", digestRef, i.pullError(ctx, err))
	}
	img, err := i.eng.InspectImage(ctx, id)
	if err != nil {
		return "", fmt.Errorf("load verified image %s: the engine holds no image %s after the load: %w", digestRef, id, err)
	}
	if !sameID(img.ID, id) {
		return "", fmt.Errorf("load verified image %s: the engine loaded %s, want %s", digestRef, img.ID, id)
	}
	return id, nil
}

// sameID compares image IDs with or without their "sha256:" (Podman
// answers without it).
func sameID(a, b string) bool {
	return strings.TrimPrefix(a, "sha256:") == strings.TrimPrefix(b, "sha256:")
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

// removeStaleFetches removes what fetches a crash interrupted left in dir:
// entries older than age (a fetch of another runner, the successor of an
// upgrade, may be under way).
func removeStaleFetches(dir string, age time.Duration, now time.Time, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < age {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			log.Warn("could not remove what an interrupted image fetch left", "path", filepath.Join(dir, e.Name()), "err", err)
		}
	}
}
