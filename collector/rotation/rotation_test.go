package rotation_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/rotation"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

var ctx = context.Background()

const grace = 10 * time.Minute

// rig is an enrolled collector's config dir on an in-process platform.
type rig struct {
	t   *testing.T
	e   *platformtest.Env
	c   *platformtest.Collector
	dir string
	r   *rotation.Rotator
}

func newRig(t *testing.T) *rig {
	e := platformtest.Start(t, func(c *platform.Config) { c.CollectorKeyGrace = grace })
	c := e.EnrollNew(t, "rotating")
	dir := t.TempDir()
	write(t, filepath.Join(dir, config.IdentityFile), crypto.MarshalEd25519PrivateKeyPEM(c.Key))
	write(t, filepath.Join(dir, config.HPKEFile), crypto.MarshalHPKEPrivateKeyPEM(c.HPKE))
	g := &rig{t: t, e: e, c: c, dir: dir}
	g.r = &rotation.Rotator{Dir: dir, CollectorID: c.ID, Audience: e.Server.Audience(), Now: e.Clock.Now,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Client: func(key ed25519.PrivateKey) rotation.Platform { return g.client(key) }}
	return g
}

func (g *rig) client(key ed25519.PrivateKey) *api.CollectorClient {
	return api.NewCollectorClient(g.e.URL, g.c.ID, key, g.e.Server.Audience(), g.e.HTTP)
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := config.WriteFile(path, b); err != nil {
		t.Fatal(err)
	}
}

// keys returns the keys in the config dir's file name (plus suffix).
func (g *rig) keys(suffix string) (ed25519.PrivateKey, *crypto.HPKEKey) {
	g.t.Helper()
	id, err := config.ReadIdentityKey(filepath.Join(g.dir, config.IdentityFile+suffix))
	if err != nil {
		g.t.Fatal(err)
	}
	hk, err := config.ReadHPKEKey(filepath.Join(g.dir, config.HPKEFile+suffix))
	if err != nil {
		g.t.Fatal(err)
	}
	return id, hk
}

func (g *rig) exists(name string) bool {
	_, err := os.Stat(filepath.Join(g.dir, name))
	return err == nil
}

// platformKeys reads what the platform holds, as an admin sees it.
func (g *rig) platformKeys() (string, string) {
	g.t.Helper()
	v, err := g.e.Admin.Collector(ctx, g.c.ID)
	if err != nil {
		g.t.Fatal(err)
	}
	return v.IdentityKeyFingerprint, v.HPKEKeyFingerprint
}

func fp(k ed25519.PrivateKey) string { return crypto.Fingerprint(k.Public().(ed25519.PublicKey)) }

func beat(c *api.CollectorClient) error {
	return c.Heartbeat(ctx, api.Heartbeat{RunnerState: api.RunnerRunning})
}

// TestRotate: the keys are replaced on disk and on the platform; a ring
// that loaded the old keys (the runner) follows; the old key works
// through the grace and is refused after it.
func TestRotate(t *testing.T) {
	g := newRig(t)
	ring := config.NewKeyRing(g.dir, &config.Keys{Identity: g.c.Key, HPKE: g.c.HPKE})
	runner := g.client(g.c.Key)
	runner.SetKeySource(ring.Identities)
	if err := beat(runner); err != nil {
		t.Fatal(err)
	}
	res, err := g.r.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, hk := g.keys("")
	if fp(id) == fp(g.c.Key) || res.IdentityKeyFingerprint != fp(id) || res.HPKEKeyFingerprint != crypto.Fingerprint(hk.PublicKey()) {
		t.Fatalf("result %+v, identity key on disk %s (was %s)", res, fp(id), fp(g.c.Key))
	}
	if pid, phk := g.platformKeys(); pid != fp(id) || phk != crypto.Fingerprint(hk.PublicKey()) {
		t.Errorf("the platform holds %s %s, the collector %s", pid, phk, fp(id))
	}
	if old, oldHK := g.keys(config.PreviousSuffix); fp(old) != fp(g.c.Key) || crypto.Fingerprint(oldHK.PublicKey()) != crypto.Fingerprint(g.c.HPKE.PublicKey()) {
		t.Error("the old keys are not kept as .previous")
	}
	if g.exists(config.IdentityFile+config.NextSuffix) || g.exists(config.HPKEFile+config.NextSuffix) {
		t.Error(".next files left after a finished rotation")
	}
	if ids := ring.Identities(); len(ids) != 1 || fp(ids[0]) != fp(id) || len(ring.HPKEKeys()) != 2 {
		t.Errorf("the ring did not follow: %d identities, first %s, %d HPKE keys", len(ids), fp(ids[0]), len(ring.HPKEKeys()))
	}
	// In the grace the runner's old token still works; after it, the
	// runner signs with the new key from the ring.
	if err := beat(runner); err != nil {
		t.Errorf("runner in the grace: %v", err)
	}
	g.e.Clock.Advance(grace + time.Second)
	if err := beat(runner); err != nil {
		t.Errorf("runner after the grace: %v", err)
	}
	if err := beat(g.client(g.c.Key)); api.StatusOf(err) != 401 {
		t.Errorf("old key after the grace: %v, want 401", err)
	}
}

// TestCrashBeforeThePlatformAnswered: new keys on disk the platform never
// got (both, or the HPKE key alone: a crash while they were written) are
// rolled back; the collector keeps its keys and can rotate again.
func TestCrashBeforeThePlatformAnswered(t *testing.T) {
	for _, both := range []bool{true, false} {
		t.Run(fmt.Sprint("both keys written: ", both), func(t *testing.T) {
			g := newRig(t)
			next, nextHK := platformtest.NewKeys(t)
			write(t, filepath.Join(g.dir, config.HPKEFile+config.NextSuffix), crypto.MarshalHPKEPrivateKeyPEM(nextHK))
			if both {
				write(t, filepath.Join(g.dir, config.IdentityFile+config.NextSuffix), crypto.MarshalEd25519PrivateKeyPEM(next))
			}
			res, err := g.r.Resolve(ctx)
			if err != nil || res != nil {
				t.Fatalf("resolve = %+v, %v; want a roll-back", res, err)
			}
			if id, _ := g.keys(""); fp(id) != fp(g.c.Key) || g.exists(config.IdentityFile+config.NextSuffix) || g.exists(config.HPKEFile+config.NextSuffix) {
				t.Fatal("not rolled back")
			}
			if res, err := g.r.Rotate(ctx); err != nil || res.Finished {
				t.Fatalf("rotate after the roll-back: %+v, %v", res, err)
			}
		})
	}
}

// TestCrashAfterThePlatformTookTheKeys: the platform holds the new keys,
// the files were not switched (or half): the switch is finished, even
// once the old key's grace is over (the new key asks), and by a Rotate
// as well as by Resolve.
func TestCrashAfterThePlatformTookTheKeys(t *testing.T) {
	for _, tc := range []struct {
		name       string
		halfSwitch bool
		late       bool
		viaRotate  bool
	}{
		{name: "files not switched"},
		{name: "identity switched, HPKE not", halfSwitch: true},
		{name: "after the grace", late: true},
		{name: "found by the next rotate", viaRotate: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t)
			next, nextHK := platformtest.NewKeys(t)
			req := api.SignKeyRotation(g.c.ID, g.e.Server.Audience(), g.c.Key, next, nextHK.PublicKey(), g.e.Clock.Now())
			if _, err := g.c.Client.RotateKeys(ctx, req); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(g.dir, config.HPKEFile+config.NextSuffix), crypto.MarshalHPKEPrivateKeyPEM(nextHK))
			if tc.halfSwitch {
				write(t, filepath.Join(g.dir, config.IdentityFile+config.PreviousSuffix), crypto.MarshalEd25519PrivateKeyPEM(g.c.Key))
				write(t, filepath.Join(g.dir, config.IdentityFile), crypto.MarshalEd25519PrivateKeyPEM(next))
			} else {
				write(t, filepath.Join(g.dir, config.IdentityFile+config.NextSuffix), crypto.MarshalEd25519PrivateKeyPEM(next))
			}
			ring := config.NewKeyRing(g.dir, &config.Keys{Identity: g.c.Key, HPKE: g.c.HPKE})
			if tc.late {
				g.e.Clock.Advance(grace + time.Second)
			}
			// Not locked out meanwhile: the daemon and runner sign with
			// the current key, then the next.
			runner := g.client(g.c.Key)
			runner.SetKeySource(ring.Identities)
			if err := beat(runner); err != nil {
				t.Errorf("before the rotation is finished: %v", err)
			}
			var res *rotation.Result
			var err error
			if tc.viaRotate {
				res, err = g.r.Rotate(ctx)
			} else {
				res, err = g.r.Resolve(ctx)
			}
			if err != nil || res == nil || !res.Finished || res.IdentityKeyFingerprint != fp(next) {
				t.Fatalf("resolve = %+v, %v; want the rotation finished", res, err)
			}
			id, hk := g.keys("")
			if fp(id) != fp(next) || crypto.Fingerprint(hk.PublicKey()) != crypto.Fingerprint(nextHK.PublicKey()) {
				t.Error("files not switched to the keys the platform holds")
			}
			if old, _ := g.keys(config.PreviousSuffix); fp(old) != fp(g.c.Key) {
				t.Error("the old identity key is not kept as .previous")
			}
			if err := beat(g.client(id)); err != nil {
				t.Errorf("the switched key: %v", err)
			}
		})
	}
}

// lostAnswer is a platform whose rotation answer never arrives, though
// the platform took the keys.
type lostAnswer struct{ *api.CollectorClient }

func (l lostAnswer) RotateKeys(ctx context.Context, req api.RotateKeysRequest) (*api.CollectorKeys, error) {
	if _, err := l.CollectorClient.RotateKeys(ctx, req); err != nil {
		return nil, err
	}
	return nil, errors.New("connection reset by peer")
}

// TestLostAnswer: the platform took the keys but its answer was lost:
// the rotation asks which keys the platform holds and finishes.
func TestLostAnswer(t *testing.T) {
	g := newRig(t)
	g.r.Client = func(key ed25519.PrivateKey) rotation.Platform { return lostAnswer{g.client(key)} }
	res, err := g.r.Rotate(ctx)
	if err != nil || res.Finished {
		t.Fatalf("rotate = %+v, %v; want this rotation done", res, err)
	}
	if id, _ := g.keys(""); res.IdentityKeyFingerprint != fp(id) || fp(id) == fp(g.c.Key) {
		t.Errorf("identity key on disk %s, platform %s", fp(id), res.IdentityKeyFingerprint)
	}
}
