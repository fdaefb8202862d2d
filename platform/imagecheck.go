package platform

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integration/manifest"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/platform/configschema"
	"github.com/collectorhq/collector/trust"
)

// An integration's image is checked when it is saved, the way its
// collector will check it before each run: resolved to a digest over the
// registry and verified against the platform's image policy (the one sent
// to collectors at enrollment). An image that would be refused at run
// time is refused at save time, with the reason; its config schema label
// is read from the verified image.

// imageCheckTimeout bounds a check (the registry may be slow or away).
const imageCheckTimeout = 30 * time.Second

// checkedImage is what a check learned.
type checkedImage struct {
	Digest string // name@sha256:...
	Schema *configschema.Schema
	// Manifest is the image's manifest label, when it has one
	// (docs/integration-contract.md, "Manifest").
	Manifest *manifest.Manifest
}

type imageChecker struct {
	mu sync.Mutex
	v  *trust.Verifier
}

func (s *Server) verifier() (*trust.Verifier, error) {
	s.images.mu.Lock()
	defer s.images.mu.Unlock()
	if s.images.v != nil {
		return s.images.v, nil
	}
	if len(s.cfg.ImagePolicy) == 0 {
		return nil, errorf(http.StatusBadRequest, api.CodeImageRefused,
			"image: the platform has no image policy (serve --image-policy), so no image can be verified")
	}
	v, err := trust.New(trust.Config{Policy: s.cfg.ImagePolicy, InsecureRegistries: s.cfg.InsecureRegistries, InsecureLoopback: true,
		Logger: s.log, UserAgent: "collector-platform/" + buildinfo.Version})
	if err != nil {
		return nil, err
	}
	s.images.v = v
	return v, nil
}

// closeImages releases the verifier's files.
func (s *Server) closeImages() {
	s.images.mu.Lock()
	defer s.images.mu.Unlock()
	if s.images.v != nil {
		s.images.v.Close()
		s.images.v = nil
	}
}

// checkImage verifies ref and reads its config schema. With VerifyImages
// off it checks nothing (nil, nil).
func (s *Server) checkImage(ctx context.Context, ref string) (*checkedImage, error) {
	if !s.cfg.VerifyImages {
		return nil, nil
	}
	v, err := s.verifier()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, imageCheckTimeout)
	defer cancel()
	digest, err := v.Verify(ctx, ref)
	var re *trust.RefusalError
	if errors.Is(err, trust.ErrRegistryUnreachable) || errors.Is(err, trust.ErrImageNotFound) {
		// Not a verdict on the image: it could not be looked at now.
		return nil, &uncheckedError{err: err}
	}
	if errors.As(err, &re) {
		return nil, errorf(http.StatusBadRequest, api.CodeImageRefused, "image: %v", re)
	}
	if err != nil {
		return nil, err
	}
	out := &checkedImage{Digest: digest}
	labels, err := v.Labels(ctx, digest)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, api.CodeImageRefused, "image: %v", err)
	}
	// The manifest's schema, else the older schema-only label.
	doc, ok := labels[api.ConfigSchemaLabel]
	if m, has := labels[manifest.Label]; has {
		if out.Manifest, err = manifest.Parse([]byte(m)); err != nil {
			return nil, errorf(http.StatusBadRequest, api.CodeImageRefused, "image: its %s label: %v", manifest.Label, err)
		}
		if out.Manifest.ConfigSchema != nil {
			doc, ok = string(out.Manifest.ConfigSchema), true
		}
	}
	if ok {
		if out.Schema, err = configschema.Parse([]byte(doc)); err != nil {
			return nil, errorf(http.StatusBadRequest, api.CodeImageRefused, "image: its %s label: %v", api.ConfigSchemaLabel, err)
		}
	}
	return out, nil
}

// uncheckedError: the image could not be checked now (its registry did
// not answer, or has no such image yet).
type uncheckedError struct{ err error }

func (e *uncheckedError) Error() string { return "image: " + e.err.Error() }
func (e *uncheckedError) Unwrap() error { return e.err }

// checkImageOrWarn is checkImage for a save: an image the policy refuses
// is an error; one that could not be checked now (its registry did not
// answer, or has no such image yet) is an error when strict, else a
// warning, and the integration is saved unchecked (the collector verifies
// the image before each run).
func (s *Server) checkImageOrWarn(ctx context.Context, ref string, strict bool) (*checkedImage, string, error) {
	checked, err := s.checkImage(ctx, ref)
	var ue *uncheckedError
	switch {
	case err == nil:
		return checked, "", nil
	case !errors.As(err, &ue) || ctx.Err() != nil:
		return nil, "", err
	case strict:
		return nil, "", errorf(http.StatusBadGateway, api.CodeImageUnchecked, "image %s could not be checked now (strict): %v", ref, ue.err)
	}
	s.log.Warn("integration image not checked; saved with a warning", "image", ref, "err", ue.err)
	return nil, fmt.Sprintf("image %s was not checked: %v; it is saved unchecked (no config schema read) and the collector verifies it before each run; check it again with an update, or save with strict to refuse this", ref, err), nil
}

// validateConfig checks a config against the integration's schema, if it
// has one.
func validateConfig(schema []byte, config []byte, secret []string) error {
	if len(schema) == 0 {
		return nil
	}
	sc, err := configschema.Parse(schema)
	if err != nil {
		return fmt.Errorf("stored config schema: %w", err)
	}
	if err := sc.Validate(config, secret); err != nil {
		return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "%v", err)
	}
	return nil
}
