package platform

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
)

// enroll burns a one-time token and records the collector's public keys.
// A platform with no image signature policy refuses before the token is
// burned: the collector could not verify a single image, and a burned
// token would cost the operator a new one.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, api.DecodeEnroll)
	if err != nil {
		s.metrics.enrollment("malformed")
		return err
	}
	if len(s.cfg.ImagePolicy) == 0 {
		s.metrics.enrollment(api.CodeNoImagePolicy)
		s.log.Warn("enrollment refused: no image signature policy", "collector", req.CollectorID)
		return errorf(http.StatusServiceUnavailable, api.CodeNoImagePolicy,
			"the platform has no image signature policy to give collectors: restart it with --image-policy FILE (the token was not used; try again after)")
	}
	e := store.Enrollment{CollectorID: req.CollectorID, TokenHash: crypto.HashToken(req.Token),
		IdentityKey: req.IdentityPublicKey, HPKEKey: req.HPKEPublicKey, Now: s.now()}
	ev := store.Event{Time: s.now(), Actor: "collector:" + req.CollectorID, Action: "collector.enrolled",
		Target: req.CollectorID, Details: map[string]any{
			"identity_key": crypto.Fingerprint(req.IdentityPublicKey),
			"hpke_key":     crypto.Fingerprint(req.HPKEPublicKey),
		}}
	defer s.checkpointAudit(context.WithoutCancel(r.Context()))
	if err := s.st.Enroll(r.Context(), e, ev); err != nil {
		he := enrollError(err)
		if he == nil {
			return err
		}
		s.metrics.enrollment(he.code)
		s.metrics.authFailure("enrollment_" + he.code)
		s.log.Warn("enrollment refused", "collector", req.CollectorID, "code", he.code)
		return he
	}
	s.metrics.enrollment("ok")
	s.log.Info("collector enrolled", "collector", req.CollectorID, "identity_key", crypto.Fingerprint(req.IdentityPublicKey))
	writeJSON(w, http.StatusOK, api.EnrollResponse{
		CollectorID:          req.CollectorID,
		PlatformSigningKey:   s.SigningPublicKey(),
		HeartbeatIntervalSec: int(s.cfg.HeartbeatInterval.Seconds()),
		Audience:             s.audience,
		ImagePolicy:          s.cfg.ImagePolicy,
	})
	return nil
}

// enrollError maps a refused enrollment to its answer; nil for other errors.
func enrollError(err error) *httpError {
	switch {
	case errors.Is(err, store.ErrTokenInvalid):
		return &httpError{status: http.StatusUnauthorized, code: api.CodeInvalidToken,
			message: "enrollment token is not valid for this collector: ask the administrator for a new one (platform collectors token ID)"}
	case errors.Is(err, store.ErrTokenExpired):
		return &httpError{status: http.StatusUnauthorized, code: api.CodeTokenExpired,
			message: "enrollment token has expired: ask the administrator for a new one (platform collectors token ID)"}
	case errors.Is(err, store.ErrTokenRevoked):
		return &httpError{status: http.StatusUnauthorized, code: api.CodeTokenRevoked,
			message: "enrollment token was replaced by a newer one: use the newest token"}
	case errors.Is(err, store.ErrTokenUsed):
		return &httpError{status: http.StatusConflict, code: api.CodeTokenUsed,
			message: "enrollment token was already used: each token enrolls once; ask for a new one to re-enroll"}
	}
	return nil
}

// errUnknownCollector: the assertion names no enrolled collector.
var errUnknownCollector = errors.New("unknown or not enrolled collector")

// exchangeToken trades a signed assertion for a short-lived access token.
func (s *Server) exchangeToken(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, api.DecodeToken)
	if err != nil {
		return err
	}
	now := s.now()
	a, keyFP, err := s.verifyAssertion(r.Context(), req.Assertion, now)
	if err != nil {
		return s.assertionError(err)
	}
	tok, err := crypto.NewToken(api.AccessTokenPrefix)
	if err != nil {
		return err
	}
	// Bound to the key the assertion was verified with: issued only if it
	// is still the collector's key, and dead as soon as it is not.
	at := store.AccessToken{Hash: crypto.HashToken(tok), CollectorID: a.CollectorID, ExpiresAt: now.Add(s.cfg.AccessTokenTTL), KeyFingerprint: keyFP}
	err = s.st.IssueAccessToken(r.Context(), a.JTI, a.ExpiresAt.Add(crypto.AssertionClockSkew), at, now)
	switch {
	case errors.Is(err, store.ErrReplay):
		s.log.Warn("assertion replay", "collector", a.CollectorID)
		return s.refuseAssertion("replay")
	case errors.Is(err, store.ErrNotEnrolled):
		return s.refuseAssertion("unknown_collector")
	case errors.Is(err, store.ErrStaleKey):
		return s.refuseAssertion("stale_key")
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, api.TokenResponse{AccessToken: tok, TokenType: "Bearer",
		ExpiresIn: int(s.cfg.AccessTokenTTL.Seconds())})
	return nil
}

// errAssertionRefused is the one answer to every refused assertion: the
// reason goes to the log and metrics only, so the endpoint tells a prober
// nothing (docs/auth.md §4).
var errAssertionRefused = errorf(http.StatusUnauthorized, api.CodeInvalidAssert,
	"assertion refused: sign a fresh assertion (EdDSA JWT, iss = sub = collector ID, aud = platform URL, ≤ 60 s, new jti) with the enrolled identity key; the platform log has the reason")

func (s *Server) assertionError(err error) error {
	reason := "malformed"
	switch {
	case errors.Is(err, errUnknownCollector):
		reason = "unknown_collector"
	case errors.Is(err, crypto.ErrAssertionSignature):
		reason = "signature"
	case errors.Is(err, crypto.ErrAssertionExpired):
		reason = "expired"
	case errors.Is(err, crypto.ErrAssertionAudience):
		reason = "audience"
	case errors.Is(err, crypto.ErrAssertionLifetime):
		reason = "lifetime"
	case errors.Is(err, crypto.ErrAssertionMalformed):
	default:
		// The key look-up failed for another reason: the store is down.
		s.log.Error("verify assertion: key look-up failed", "err", err)
		return errorf(http.StatusServiceUnavailable, "unavailable", "the platform cannot verify assertions right now; retry later")
	}
	return s.refuseAssertion(reason)
}

// refuseAssertion logs why an assertion was refused. The metric has one
// label for every reason: a reason such as "unknown collector" next to
// "bad signature" would tell a prober which collector IDs exist.
func (s *Server) refuseAssertion(reason string) error {
	s.metrics.authFailure("assertion")
	s.log.Warn("assertion refused", "reason", reason)
	return errAssertionRefused
}

// heartbeat records a heartbeat for the collector the access token names.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, collectorID string) error {
	hb, err := decode(s, w, r, api.DecodeHeartbeat)
	if err != nil {
		return err
	}
	rec := store.Heartbeat{At: s.now().UTC(), Version: hb.Version, EngineKind: hb.Engine.Kind, EngineVer: hb.Engine.Version,
		CPUs: hb.Capacity.CPUs, MemTotal: hb.Capacity.MemoryTotalBytes, MemFree: hb.Capacity.MemoryFreeBytes,
		Running: hb.RunningJobs, RunnerState: hb.RunnerState, EngineError: hb.EngineError, RunnerHealth: hb.RunnerHealth}
	if hb.Storage != nil {
		rec.StorageTotal, rec.StorageUsed = hb.Storage.TotalBytes, hb.Storage.UsedBytes
	}
	rec.Image, rec.ClockOffsetMs = hb.Image, hb.ClockOffsetMs
	if u := hb.Upgrade; u != nil {
		rec.UpgradeState, rec.UpgradeImage, rec.UpgradeReason, rec.UpgradeSteps = u.State, u.Image, u.Reason, u.Steps
	}
	prev, err := s.st.Collector(r.Context(), collectorID)
	if err != nil {
		return err
	}
	if err := s.st.RecordHeartbeat(r.Context(), collectorID, rec, s.cfg.HeartbeatHistory); err != nil {
		return err
	}
	s.metrics.heartbeats.Inc()
	desired, err := s.noteUpgrade(r, prev, hb)
	if err != nil {
		return err
	}
	if desired == hb.Image {
		desired = ""
	}
	// During a rotation of the signing key or the CA, the answer carries
	// the key set: the daemon pins it, jobs or not (docs/auth.md §8).
	keys, err := s.platformKeySet()
	if err != nil {
		return err
	}
	if desired == "" && keys == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, api.HeartbeatAnswer{DesiredImage: desired, PlatformKeys: keys})
	return nil
}

// platformKeySet is the signed key set collectors pin while the signing
// key or the CA rotates, nil otherwise.
func (s *Server) platformKeySet() (*crypto.SignedKeySet, error) {
	now := s.now()
	ca, rotating := s.certs.caPins(now)
	ks, err := s.signing.Announcement(now, ca, rotating)
	if err != nil {
		return nil, fmt.Errorf("sign the platform key set: %w", err)
	}
	return ks, nil
}

// noteUpgrade audits each new step of a collector's upgrade, as its
// heartbeats report them, and stops asking for an image the collector
// refused or rolled back (until an admin asks again) or now runs. It
// returns the image to ask for.
func (s *Server) noteUpgrade(r *http.Request, prev store.Collector, hb api.Heartbeat) (string, error) {
	desired, u := prev.DesiredImage, hb.Upgrade
	var last store.Heartbeat
	if prev.LastBeat != nil {
		last = *prev.LastBeat
	}
	steps := newSteps(last, u)
	if len(steps) == 0 {
		if desired != "" && desired == hb.Image {
			// It runs it: nothing more to ask.
			ev := store.Event{Time: s.now(), Actor: "collector:" + prev.ID, Action: "collector.upgrade_done", Target: prev.ID,
				Details: map[string]any{"image": desired}}
			if _, err := s.st.ClearDesiredImage(r.Context(), prev.ID, desired, ev); err != nil {
				return "", err
			}
			return "", nil
		}
		return desired, nil
	}
	// Each step reported for the first time is audited, in order; the
	// last one carries the reason.
	for i, step := range steps {
		details := map[string]any{"image": u.Image, "from": hb.Image}
		last := i == len(steps)-1
		if last && u.Reason != "" {
			details["reason"] = u.Reason
		}
		ev := store.Event{Time: s.now(), Actor: "collector:" + prev.ID, Action: "collector.upgrade_" + step, Target: prev.ID, Details: details}
		s.log.Info("collector upgrade", "collector", prev.ID, "state", step, "image", u.Image, "reason", u.Reason)
		if last && u.Final() && u.Image == desired {
			if _, err := s.st.ClearDesiredImage(r.Context(), prev.ID, desired, ev); err != nil {
				return "", err
			}
			return "", nil
		}
		if err := s.st.AppendAudit(r.Context(), ev); err != nil {
			return "", err
		}
	}
	return desired, nil
}

// newSteps are the steps of u the previous heartbeat had not reported:
// those past its list when it reported the same image, else all of them
// (or u's state alone, from a collector that sends no steps).
func newSteps(last store.Heartbeat, u *api.UpgradeStatus) []string {
	if u == nil {
		return nil
	}
	steps := u.Steps
	if len(steps) == 0 || steps[len(steps)-1] != u.State {
		steps = append(slices.Clone(steps), u.State)
	}
	if last.UpgradeImage != u.Image {
		return steps
	}
	seen := last.UpgradeSteps
	if len(seen) == 0 && last.UpgradeState != "" {
		seen = []string{last.UpgradeState}
	}
	if len(seen) <= len(steps) && slices.Equal(seen, steps[:len(seen)]) {
		return steps[len(seen):]
	}
	if len(steps) < len(seen) && slices.Equal(steps, seen[:len(steps)]) {
		// An older report (the old daemon, while the new one takes over).
		return nil
	}
	if u.State == last.UpgradeState {
		return nil
	}
	return []string{u.State}
}

func heartbeatView(hb store.Heartbeat) api.Heartbeat {
	at := hb.At
	v := api.Heartbeat{At: &at, Version: hb.Version, Engine: api.Engine{Kind: hb.EngineKind, Version: hb.EngineVer},
		Capacity:    api.Capacity{CPUs: hb.CPUs, MemoryTotalBytes: hb.MemTotal, MemoryFreeBytes: hb.MemFree},
		RunningJobs: hb.Running, RunnerState: hb.RunnerState, EngineError: hb.EngineError, RunnerHealth: hb.RunnerHealth}
	if hb.StorageTotal > 0 {
		v.Storage = &api.StorageUse{TotalBytes: hb.StorageTotal, UsedBytes: hb.StorageUsed}
	}
	v.Image, v.ClockOffsetMs = hb.Image, hb.ClockOffsetMs
	if hb.UpgradeState != "" {
		v.Upgrade = &api.UpgradeStatus{State: hb.UpgradeState, Image: hb.UpgradeImage, Reason: hb.UpgradeReason}
	}
	return v
}
