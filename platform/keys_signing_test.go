package platform_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// leaseKeys runs the integration, leases its job as c, finishes it (so
// that no lease of it expires into the queue later), and returns the
// lease.
func leaseKeys(t *testing.T, e *platformtest.Env, c *platformtest.Collector, integrationID string) *api.Lease {
	t.Helper()
	l := runAndLease(t, e, c, integrationID)
	if err := c.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID}); err != nil {
		t.Fatal(err)
	}
	return l
}

// openWithAny opens an envelope with the first of keys its signature
// verifies under, as the runner does.
func openWithAny(l *api.Lease, c *platformtest.Collector, keys []ed25519.PublicKey, now time.Time) error {
	err := crypto.ErrEnvelopeSignature
	for _, k := range keys {
		if _, err = crypto.OpenEnvelope(l.Envelope, c.ID, l.JobID, c.HPKE, k, now); !errors.Is(err, crypto.ErrEnvelopeSignature) {
			return err
		}
	}
	return err
}

// TestRotateSigningKey: the running platform announces a next key in the
// leases it hands out, signed by the key collectors pinned; after the
// switch (no restart) it signs envelopes with the new key and still
// announces the old one, signed by both, until the grace ends; then the
// old key is no longer announced and its envelopes open under no key a
// collector accepts. Without the ring, leases carry no key set and the
// platform signs with the enrolled key forever.
func TestRotateSigningKey(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	oldPub := ed25519.PublicKey(a.Enrolled.PlatformSigningKey)
	var ins []string
	for _, name := range []string{"one", "two", "three", "four"} {
		ins = append(ins, newJobIntegration(t, e, name, a.ID).ID)
	}
	if l := leaseKeys(t, e, a, ins[0]); l.PlatformKeys != nil {
		t.Fatalf("a lease with no rotation under way announces keys: %+v", l.PlatformKeys)
	}

	if _, err := platform.AnnounceSigningKey(e.DataDir, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	// A job leased before the switch: signed with the old key.
	before := leaseKeys(t, e, a, ins[1])
	if before.PlatformKeys == nil {
		t.Fatal("the lease does not announce the next key")
	}
	announced, err := before.PlatformKeys.Verify([]ed25519.PublicKey{oldPub})
	if err != nil {
		t.Fatalf("announcement under the enrolled key: %v", err)
	}
	if !ed25519.PublicKey(announced.Current).Equal(oldPub) || len(announced.Next) != ed25519.PublicKeySize || announced.Previous != nil {
		t.Fatalf("announcement = %+v, want the enrolled key current and a next key", announced)
	}
	newPub := ed25519.PublicKey(announced.Next)
	if _, err := platform.AnnounceSigningKey(e.DataDir, e.Clock.Now()); err == nil {
		t.Fatal("a second announcement before the switch was taken")
	}

	if _, err := platform.SwitchSigningKey(e.DataDir, time.Hour, false, time.Now()); !errors.Is(err, platform.ErrAnnouncedTooRecently) {
		t.Fatalf("switch right after the announcement: %v, want ErrAnnouncedTooRecently", err)
	}
	st, err := platform.SwitchSigningKey(e.DataDir, time.Hour, true, e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != crypto.Fingerprint(newPub) || st.Previous != crypto.Fingerprint(oldPub) || st.Next != "" {
		t.Fatalf("status after the switch = %+v", st)
	}
	if !e.Server.SigningPublicKey().Equal(newPub) {
		t.Fatal("the running platform did not take the new key")
	}
	after := leaseKeys(t, e, a, ins[2])
	switched, err := after.PlatformKeys.Verify([]ed25519.PublicKey{oldPub})
	if err != nil {
		t.Fatalf("during the grace, a collector pinning only the old key takes the set: %v", err)
	}
	if _, err := after.PlatformKeys.Verify([]ed25519.PublicKey{newPub}); err != nil {
		t.Fatalf("the set is signed by the new key: %v", err)
	}
	if !ed25519.PublicKey(switched.Current).Equal(newPub) || !ed25519.PublicKey(switched.Previous).Equal(oldPub) || switched.PreviousUntil == nil {
		t.Fatalf("set after the switch = %+v", switched)
	}
	if _, err := crypto.OpenEnvelope(after.Envelope, a.ID, after.JobID, a.HPKE, oldPub, e.Clock.Now()); !errors.Is(err, crypto.ErrEnvelopeSignature) {
		t.Fatalf("new envelope under the old key: %v, want a signature error", err)
	}
	now := e.Clock.Now()
	if err := openWithAny(after, a, switched.Accepted(now), now); err != nil {
		t.Fatalf("new envelope under the accepted keys: %v", err)
	}
	if err := openWithAny(before, a, switched.Accepted(now), now); err != nil {
		t.Fatalf("envelope signed before the switch, during the grace: %v", err)
	}
	b := e.EnrollNew(t, "b")
	if !ed25519.PublicKey(b.Enrolled.PlatformSigningKey).Equal(newPub) {
		t.Fatal("a collector enrolled after the switch pins the old key")
	}

	e.Clock.Advance(time.Hour)
	late := leaseKeys(t, e, a, ins[3])
	if _, err := late.PlatformKeys.Verify([]ed25519.PublicKey{oldPub}); !errors.Is(err, crypto.ErrKeySetRefused) {
		t.Fatalf("after the grace the set is still signed by the old key: %v", err)
	}
	retired, err := late.PlatformKeys.Verify([]ed25519.PublicKey{newPub})
	if err != nil {
		t.Fatal(err)
	}
	if retired.Previous != nil || retired.Next != nil {
		t.Fatalf("set after the grace = %+v, want the new key alone", retired)
	}
	if err := openWithAny(before, a, switched.Accepted(e.Clock.Now()), now); !errors.Is(err, crypto.ErrEnvelopeSignature) {
		t.Fatalf("envelope signed with the old key, after the grace: %v, want refused", err)
	}

	// The next rotation may begin: the retired key leaves the directory.
	if _, err := platform.AnnounceSigningKey(e.DataDir, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.DataDir, platform.SigningPreviousFile)); !os.IsNotExist(err) {
		t.Fatalf("the retired key is still in the data directory: %v", err)
	}
	e2 := e.Restart(t)
	if !e2.Server.SigningPublicKey().Equal(newPub) {
		t.Fatal("after a restart the platform signs with another key")
	}
}

// TestSwitchSigningKeyResumes: a switch interrupted after it kept the old
// key as previous (the new key not yet current) is finished by running it
// again, with the old key still the previous one.
func TestSwitchSigningKeyResumes(t *testing.T) {
	e := platformtest.Start(t)
	oldFP := crypto.Fingerprint(e.Server.SigningPublicKey())
	nextFP, err := platform.AnnounceSigningKey(e.DataDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(filepath.Join(e.DataDir, platform.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	// The switch's first two steps: the grace, then the old key kept.
	if err := os.WriteFile(filepath.Join(e.DataDir, platform.SigningPreviousUntilFile), []byte("2000-01-01T00:00:00Z\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.DataDir, platform.SigningPreviousFile), cur, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := platform.SwitchSigningKey(e.DataDir, time.Hour, true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != nextFP || st.Previous != oldFP || !st.PreviousUntil.After(time.Now()) {
		t.Fatalf("status = %+v, want current %s and previous %s with a new grace", st, nextFP, oldFP)
	}
	if crypto.Fingerprint(e.Server.SigningPublicKey()) != nextFP {
		t.Fatal("the running platform did not take the new key")
	}
}
