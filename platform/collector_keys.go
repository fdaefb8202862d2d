package platform

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
)

// rotateKeys replaces the calling collector's identity and HPKE keys
// (docs/auth.md §7). The access token says which collector; the request
// must be signed by that collector's current identity key and by the new
// one. From the answer on, envelopes are sealed to the new HPKE key and
// the old identity key is accepted only until the grace ends.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request, collectorID string) error {
	req, err := decodeInto[api.RotateKeysRequest](s, w, r)
	if err != nil {
		return err
	}
	c, err := s.st.Collector(r.Context(), collectorID)
	if err != nil {
		return err
	}
	if bytes.Equal(req.IdentityPublicKey, c.IdentityKey) || bytes.Equal(req.HPKEPublicKey, c.HPKEKey) {
		return errorf(http.StatusConflict, api.CodeConflict,
			"key rotation refused: the new keys must both differ from the current ones (%s); generate new keys", crypto.Fingerprint(c.IdentityKey))
	}
	now := s.now()
	if err := req.Verify(collectorID, s.audience, c.IdentityKey, now); err != nil {
		return rotationError(err, c.IdentityKey)
	}
	rot := store.KeyRotation{CollectorID: collectorID, OldIdentityKey: c.IdentityKey, IdentityKey: req.IdentityPublicKey,
		HPKEKey: req.HPKEPublicKey, PreviousUntil: now.Add(s.cfg.CollectorKeyGrace)}
	ev := store.Event{Time: now, Actor: "collector:" + collectorID, Action: "collector.keys_rotated", Target: collectorID,
		Details: map[string]any{
			"identity_key":          crypto.Fingerprint(req.IdentityPublicKey),
			"hpke_key":              crypto.Fingerprint(req.HPKEPublicKey),
			"previous_identity_key": crypto.Fingerprint(c.IdentityKey),
			"previous_valid_until":  rot.PreviousUntil.UTC(),
		}}
	defer s.checkpointAudit(context.WithoutCancel(r.Context()))
	if err := s.st.RotateCollectorKeys(r.Context(), rot, ev); err != nil {
		if errors.Is(err, store.ErrStaleKey) {
			// Another rotation took the same key first.
			return rotationError(api.ErrRotationNotCurrent, nil)
		}
		return err
	}
	s.log.Info("collector keys rotated", "collector", collectorID, "identity_key", crypto.Fingerprint(req.IdentityPublicKey),
		"previous_identity_key", crypto.Fingerprint(c.IdentityKey), "previous_valid_until", rot.PreviousUntil)
	writeJSON(w, http.StatusOK, keysView(store.Collector{IdentityKey: rot.IdentityKey, HPKEKey: rot.HPKEKey},
		store.PreviousKey{IdentityKey: rot.OldIdentityKey, Successor: rot.IdentityKey, Until: rot.PreviousUntil}, now))
	return nil
}

// rotationError maps a refused rotation to its answer.
func rotationError(err error, current []byte) error {
	if errors.Is(err, api.ErrRotationNotCurrent) {
		msg := "key rotation refused: it is not signed by this collector's current identity key"
		if current != nil {
			msg += " (" + crypto.Fingerprint(current) + ")"
		}
		return errorf(http.StatusConflict, api.CodeConflict, "%s: the platform may hold the new keys already; `collector keys rotate` reads them (GET %s) and finishes", msg, api.PathCollectorKeys)
	}
	return err
}

// collectorKeys answers which keys the platform holds for the calling
// collector: one that crashed in a rotation learns which of its keys won.
func (s *Server) collectorKeys(w http.ResponseWriter, r *http.Request, collectorID string) error {
	c, err := s.st.Collector(r.Context(), collectorID)
	if err != nil {
		return err
	}
	p, err := s.st.PreviousCollectorKey(r.Context(), collectorID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	writeJSON(w, http.StatusOK, keysView(c, p, s.now()))
	return nil
}

func keysView(c store.Collector, p store.PreviousKey, now time.Time) api.CollectorKeys {
	v := api.CollectorKeys{IdentityKeyFingerprint: crypto.Fingerprint(c.IdentityKey), HPKEKeyFingerprint: crypto.Fingerprint(c.HPKEKey)}
	if p.LiveFor(c.IdentityKey, now) {
		until := p.Until.UTC()
		v.PreviousIdentityKeyFingerprint, v.PreviousKeyValidUntil = crypto.Fingerprint(p.IdentityKey), &until
	}
	return v
}

// verifyAssertion checks an assertion with the collector's identity key
// and, if its signature fails, with the key the collector's last rotation
// replaced, while that is still accepted. It returns the fingerprint of
// the key that verified it, which the access token is bound to.
func (s *Server) verifyAssertion(ctx context.Context, assertion string, now time.Time) (*crypto.Assertion, string, error) {
	var c store.Collector
	a, err := crypto.ParseAssertion(assertion, s.audience, now, func(id string) (ed25519.PublicKey, error) {
		if !api.ValidCollectorID(id) {
			return nil, errUnknownCollector
		}
		got, err := s.st.Collector(ctx, id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrIntegrity) || err == nil && len(got.IdentityKey) != ed25519.PublicKeySize {
			if errors.Is(err, store.ErrIntegrity) {
				s.log.Error("collector keys fail their integrity check: refusing its assertions", "collector", id)
			}
			return nil, errUnknownCollector
		}
		c = got
		return got.IdentityKey, err
	})
	if err == nil {
		return a, crypto.Fingerprint(c.IdentityKey), nil
	}
	if !errors.Is(err, crypto.ErrAssertionSignature) || c.ID == "" {
		return nil, "", err
	}
	p, perr := s.st.PreviousCollectorKey(ctx, c.ID)
	if errors.Is(perr, store.ErrIntegrity) {
		s.log.Error("collector's previous key fails its integrity check: refusing it", "collector", c.ID)
	}
	if perr != nil || !p.LiveFor(c.IdentityKey, now) {
		return a, "", err
	}
	a, err = crypto.ParseAssertion(assertion, s.audience, now, func(id string) (ed25519.PublicKey, error) {
		if id != c.ID {
			return nil, errUnknownCollector
		}
		return p.IdentityKey, nil
	})
	return a, crypto.Fingerprint(p.IdentityKey), err
}
