package runner

import (
	"errors"
	"log/slog"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
)

// pinPlatformKeys pins the key set a lease carries during a rotation of
// the platform's signing key (docs/auth.md §8), before its envelope is
// opened: a collector that had not pinned the announced key yet takes the
// switch from the job itself, under the old key the set is also signed
// with during the grace. A set signed by no key the collector accepts
// changes nothing; the envelope is then checked as before.
func (r *Runner) pinPlatformKeys(l *api.Lease, log *slog.Logger) {
	if r.cfg.PinPlatformKeys == nil || r.cfg.PlatformKeys == nil || l.PlatformKeys == nil {
		return
	}
	changed, err := r.cfg.PinPlatformKeys(l.PlatformKeys)
	switch {
	case errors.Is(err, crypto.ErrKeySetRefused):
		log.Error("the platform's key set is signed by no key this collector accepts: refused; "+
			"if the platform's signing key was rotated while this collector was away past the grace, enroll it again", "err", err)
	case err != nil:
		log.Error("pinning the platform's signing keys failed", "err", err)
	case changed:
		var fps []string
		for _, k := range r.cfg.PlatformKeys() {
			fps = append(fps, crypto.Fingerprint(k))
		}
		log.Info("pinned the platform's signing keys", "accepted", fps)
	}
}
