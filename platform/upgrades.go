package platform

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/trust"
)

// versionLabel is where an image says its version (images.sh and
// collector-release set it).
const versionLabel = "org.opencontainers.image.version"

func (s *Server) upgradeCollectors(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeInto[api.UpgradeRequest](s, w, r)
	if err != nil {
		return err
	}
	res, err := s.UpgradeAct(r, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// UpgradeAct asks collectors to run another image. The image is verified
// against the platform's signature policy and resolved to its digest now
// (a tag moved later changes nothing), and refused below the minimum
// collector version; the heartbeat answers then carry it until each
// collector runs it, or refuses or rolls it back.
func (s *Server) UpgradeAct(r *http.Request, req api.UpgradeRequest) (*api.UpgradeResult, error) {
	if err := req.Validate(); err != nil {
		return nil, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "%v", err)
	}
	digest, version, err := s.resolveCollectorImage(r.Context(), req.Image)
	if err != nil {
		return nil, err
	}
	if min := s.cfg.MinCollectorVersion; min != "" {
		cmp, ok := api.CompareVersions(version, min)
		if !ok || cmp < 0 {
			return nil, errorf(http.StatusBadRequest, api.CodeImageRefused,
				"image %s has version %q, below the minimum collector version %s (serve --min-collector-version)", req.Image, version, min)
		}
	}
	t := store.UpgradeTarget{CollectorID: req.CollectorID, Pool: req.Pool, All: req.All}
	ev := s.event(r, "collector.upgrade_requested", targetName(t), map[string]any{"image": digest, "version": version, "asked": req.Image})
	ids, err := s.st.SetDesiredImage(r.Context(), t, digest, version, ev)
	if err != nil {
		return nil, err
	}
	s.log.Info("collector upgrade requested", "target", targetName(t), "image", digest, "version", version, "collectors", len(ids))
	return &api.UpgradeResult{Image: digest, Version: version, Collectors: ids}, nil
}

func targetName(t store.UpgradeTarget) string {
	switch {
	case t.CollectorID != "":
		return t.CollectorID
	case t.Pool != "":
		return "pool:" + t.Pool
	}
	return "all"
}

// resolveCollectorImage verifies ref against the platform's policy and
// returns it by digest with its version label. Unlike an integration's
// image, a collector image is always checked (--no-image-check does not
// apply): nothing would catch a wrong one before every collector pulls it.
func (s *Server) resolveCollectorImage(ctx context.Context, ref string) (string, string, error) {
	v, err := s.verifier()
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, imageCheckTimeout)
	defer cancel()
	digest, err := v.Verify(ctx, ref)
	var re *trust.RefusalError
	if errors.As(err, &re) {
		return "", "", errorf(http.StatusBadRequest, api.CodeImageRefused, "image: %v", re)
	}
	if err != nil {
		return "", "", fmt.Errorf("verify image %s: %w", ref, err)
	}
	labels, err := v.Labels(ctx, digest)
	if err != nil {
		return "", "", errorf(http.StatusBadRequest, api.CodeImageRefused, "image: %v", err)
	}
	return digest, labels[versionLabel], nil
}
