package runner_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/crypto"
)

// TestEnvelopesAcrossASigningKeyRotation: the runner pins the key set a
// lease carries (config.PlatformKeys, its file in the state dir) before it
// opens the envelope. A collector that never saw the announcement takes
// the switch from the first job signed with the new key (its set is also
// signed by the old key during the grace); a job signed with the old key
// before the switch still opens during the grace; after it the old key's
// envelopes are refused. A set signed by a key the collector does not
// accept pins nothing. Without the pinning (PlatformKey alone) the new
// key's job is refused.
func TestEnvelopesAcrossASigningKeyRotation(t *testing.T) {
	r := newFakeRig(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	oldPub, oldKey := r.cfg.PlatformKey, r.platKey
	keys, err := config.NewPlatformKeys(r.cfg.StateDir, oldPub, "sha256:"+strings.Repeat("0", 64), clock)
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.PlatformKeys, r.cfg.PinPlatformKeys = keys.Accepted, keys.Apply
	r.start()
	run := func(jobID string, signer ed25519.PrivateKey, set *crypto.SignedKeySet) api.FinishRequest {
		t.Helper()
		l := r.leaseSignedBy(jobID, signer)
		l.PlatformKeys = set
		r.plat.push(l)
		return r.finished(jobID)
	}
	sign := func(ks *crypto.KeySet, signers ...ed25519.PrivateKey) *crypto.SignedKeySet {
		t.Helper()
		s, err := crypto.SignKeySet(ks, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if fin := run("job_before", oldKey, nil); fin.ExitCode != 0 {
		t.Fatalf("job signed with the enrolled key: %+v", fin)
	}
	strangerPub, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	forged := sign(&crypto.KeySet{V: 1, IssuedAt: clock(), Current: strangerPub, Previous: oldPub, PreviousUntil: &now}, strangerKey)
	if fin := run("job_stranger", strangerKey, forged); fin.ExitCode != -1 || !strings.Contains(fin.Error, "envelope refused") {
		t.Fatalf("job signed by a key announced under its own signature: %+v, want the envelope refused", fin)
	}
	if !strings.Contains(r.logs.String(), "signed by no key this collector accepts") {
		t.Errorf("the refused key set was not logged:\n%s", r.logs)
	}

	// The switch, with an hour's grace: this collector never saw the
	// announcement.
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	announce := sign(&crypto.KeySet{V: 1, IssuedAt: clock(), Current: oldPub, Next: newPub}, oldKey)
	until := clock().Add(time.Hour)
	switched := sign(&crypto.KeySet{V: 1, IssuedAt: clock().Add(time.Second), Current: newPub, Previous: oldPub, PreviousUntil: &until}, newKey, oldKey)
	if fin := run("job_after_switch", newKey, switched); fin.ExitCode != 0 {
		t.Fatalf("job signed with the new key, the switch in its lease: %+v", fin)
	}
	if fin := run("job_leased_before_switch", oldKey, announce); fin.ExitCode != 0 {
		t.Fatalf("job signed with the old key, opened during the grace: %+v", fin)
	}
	if fin := run("job_new_no_set", newKey, nil); fin.ExitCode != 0 {
		t.Fatalf("job signed with the new key, pinned earlier: %+v", fin)
	}
	mu.Lock()
	now = until
	mu.Unlock()
	fin := run("job_old_after_grace", oldKey, announce)
	if fin.ExitCode != -1 || !strings.Contains(fin.Error, "envelope refused") || !strings.Contains(fin.Error, "grace") {
		t.Fatalf("job signed with the old key after the grace: %+v, want the envelope refused", fin)
	}
	if fin := run("job_new_after_grace", newKey, switched); fin.ExitCode != 0 {
		t.Fatalf("job signed with the new key after the grace: %+v", fin)
	}
}

// leaseSignedBy seals a job for the rig's collector, signed with key.
func (r *fakeRig) leaseSignedBy(jobID string, key ed25519.PrivateKey) *api.Lease {
	job := &crypto.Job{JobID: jobID, IntegrationID: "int_" + jobID, Image: "registry.example/job:1", Config: []byte(`{}`),
		Limits: crypto.Limits{MemoryBytes: 64 << 20, TimeoutSec: r.timeout}, NotAfter: time.Now().Add(2 * time.Hour)}
	env, err := crypto.SealEnvelope(job, r.cfg.CollectorID, r.cfg.HPKEKey.PublicKey(), key)
	if err != nil {
		r.t.Fatal(err)
	}
	return &api.Lease{JobID: jobID, LeaseID: "lease-" + jobID, LeaseTTLSec: 30, Attempt: 1, Envelope: env}
}
