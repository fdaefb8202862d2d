package collector

import (
	"context"
	"crypto/ed25519"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/rotation"
)

// RotateKeys replaces the collector's identity and HPKE keys now (or
// finishes a rotation left unfinished): `collector keys rotate`. The
// daemon and runner pick the new keys up from the config dir.
func RotateKeys(ctx context.Context, e Env) (*rotation.Result, error) {
	pc, err := e.client(nil)
	if err != nil {
		return nil, err
	}
	r, err := e.rotator(pc)
	if err != nil {
		return nil, err
	}
	return r.Rotate(ctx)
}

// rotator rotates with clients of its own, one per key (the new key
// finishes a rotation after the old key's grace ended), signing in the
// platform's time as c measures it.
func (e Env) rotator(pc *conn) (*rotation.Rotator, error) {
	cfg, c := pc.cfg, pc.c
	hc, err := platformHTTPClientPins(pc.platformKeys.CAPins, cfg.PlatformURL, cfg.Egress(), e.Log)
	if err != nil {
		return nil, err
	}
	return &rotation.Rotator{
		Dir: e.Dir, CollectorID: cfg.CollectorID, Audience: cfg.Audience, Now: c.Clock().Now, Log: e.Log,
		Client: func(key ed25519.PrivateKey) rotation.Platform {
			return api.NewCollectorClient(cfg.PlatformURL, cfg.CollectorID, key, cfg.Audience, hc)
		},
	}, nil
}
