package runner_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/crypto"
)

// TestEnvelopesAcrossAKeyRotation: the runner reads its HPKE keys from
// the config dir as a rotation changes them (config.KeyRing) and opens an
// envelope sealed to the old key (a job leased before the switch), to
// the new key before the files are switched (the platform took it
// first), and after; one sealed to a key it never had is refused.
// Without the ring (HPKEKey alone) the second and third jobs fail.
func TestEnvelopesAcrossAKeyRotation(t *testing.T) {
	r := newFakeRig(t)
	dir := t.TempDir()
	_, id, _ := ed25519.GenerateKey(rand.Reader)
	oldKey := r.cfg.HPKEKey
	if err := os.WriteFile(filepath.Join(dir, config.IdentityFile), crypto.MarshalEd25519PrivateKeyPEM(id), 0o600); err != nil {
		t.Fatal(err)
	}
	writeKey(t, filepath.Join(dir, config.HPKEFile), oldKey)
	ring := config.NewKeyRing(dir, &config.Keys{Identity: id, HPKE: oldKey})
	r.cfg.HPKEKey, r.cfg.HPKEKeys = nil, ring.HPKEKeys
	newKey, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	r.start()
	run := func(jobID string, to *crypto.HPKEKey) api.FinishRequest {
		t.Helper()
		r.plat.push(r.leaseTo(jobID, to))
		return r.finished(jobID)
	}
	if fin := run("job_before", oldKey); fin.ExitCode != 0 {
		t.Fatalf("job sealed to the current key: %+v", fin)
	}
	// The rotation wrote the new key beside the old; the platform took it.
	writeKey(t, filepath.Join(dir, config.HPKEFile+config.NextSuffix), newKey)
	if fin := run("job_next", newKey); fin.ExitCode != 0 {
		t.Fatalf("job sealed to the new key before the switch: %+v", fin)
	}
	// The switch: the old key kept as .previous.
	writeKey(t, filepath.Join(dir, config.HPKEFile+config.PreviousSuffix), oldKey)
	if err := os.Rename(filepath.Join(dir, config.HPKEFile+config.NextSuffix), filepath.Join(dir, config.HPKEFile)); err != nil {
		t.Fatal(err)
	}
	if fin := run("job_leased_before", oldKey); fin.ExitCode != 0 {
		t.Fatalf("job sealed to the old key, opened after the switch: %+v", fin)
	}
	if fin := run("job_after", newKey); fin.ExitCode != 0 {
		t.Fatalf("job sealed to the new key after the switch: %+v", fin)
	}
	stranger, _ := crypto.GenerateHPKEKey()
	if fin := run("job_stranger", stranger); fin.ExitCode != -1 || !strings.Contains(fin.Error, "envelope refused") {
		t.Fatalf("job sealed to a key the collector never had: %+v, want the envelope refused", fin)
	}
}

// leaseTo seals a job for the rig's collector to the HPKE key to.
func (r *fakeRig) leaseTo(jobID string, to *crypto.HPKEKey) *api.Lease {
	job := &crypto.Job{JobID: jobID, IntegrationID: "int_" + jobID, Image: "registry.example/job:1", Config: []byte(`{}`),
		Limits: crypto.Limits{MemoryBytes: 64 << 20, TimeoutSec: r.timeout}, NotAfter: time.Now().Add(time.Hour)}
	env, err := crypto.SealEnvelope(job, r.cfg.CollectorID, to.PublicKey(), r.platKey)
	if err != nil {
		r.t.Fatal(err)
	}
	return &api.Lease{JobID: jobID, LeaseID: "lease-" + jobID, LeaseTTLSec: 30, Attempt: 1, Envelope: env}
}

func writeKey(t *testing.T, path string, k *crypto.HPKEKey) {
	t.Helper()
	if err := config.WriteFile(path, crypto.MarshalHPKEPrivateKeyPEM(k)); err != nil {
		t.Fatal(err)
	}
}
