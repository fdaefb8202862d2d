package platform_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestRotateCollectorKeys: a collector replaces its keys with a request
// signed by its current and its new identity key; forged or incomplete
// requests change nothing; the old key (its tokens and its assertions)
// works through the grace, not after; jobs are sealed to the new HPKE key.
func TestRotateCollectorKeys(t *testing.T) {
	const grace = 10 * time.Minute
	e := platformtest.Start(t, func(c *platform.Config) { c.CollectorKeyGrace = grace })
	c := e.EnrollNew(t, "rotating")
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	aud := e.Server.Audience()
	newKey, newHPKE := platformtest.NewKeys(t)
	other, _ := platformtest.NewKeys(t)
	auditsBefore := e.AuditLen(t)

	refusals := []struct {
		name   string
		req    func() api.RotateKeysRequest
		status int
		code   string
	}{
		{"signed by another key", func() api.RotateKeysRequest {
			return api.SignKeyRotation(c.ID, aud, other, newKey, newHPKE.PublicKey(), time.Now())
		}, 409, api.CodeConflict},
		{"no proof of possession", func() api.RotateKeysRequest {
			r := api.SignKeyRotation(c.ID, aud, c.Key, newKey, newHPKE.PublicKey(), time.Now())
			r.NewKeySignature = ed25519.Sign(other, api.KeyRotationMessage(c.ID, aud, c.Key.Public().(ed25519.PublicKey),
				r.IdentityPublicKey, r.HPKEPublicKey, r.IssuedAt))
			return r
		}, 400, api.CodeInvalidRequest},
		{"no new signature", func() api.RotateKeysRequest {
			r := api.SignKeyRotation(c.ID, aud, c.Key, newKey, newHPKE.PublicKey(), time.Now())
			r.NewKeySignature = nil
			return r
		}, 400, api.CodeInvalidRequest},
		{"another HPKE key than signed", func() api.RotateKeysRequest {
			r := api.SignKeyRotation(c.ID, aud, c.Key, newKey, newHPKE.PublicKey(), time.Now())
			_, hk := platformtest.NewKeys(t)
			r.HPKEPublicKey = hk.PublicKey()
			return r
		}, 409, api.CodeConflict},
		{"for another platform", func() api.RotateKeysRequest {
			return api.SignKeyRotation(c.ID, "https://elsewhere.example", c.Key, newKey, newHPKE.PublicKey(), time.Now())
		}, 409, api.CodeConflict},
		{"stale", func() api.RotateKeysRequest {
			return api.SignKeyRotation(c.ID, aud, c.Key, newKey, newHPKE.PublicKey(), time.Now().Add(-time.Hour))
		}, 400, api.CodeInvalidRequest},
		{"same keys", func() api.RotateKeysRequest {
			return api.SignKeyRotation(c.ID, aud, c.Key, c.Key, c.HPKE.PublicKey(), time.Now())
		}, 409, api.CodeConflict},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Client.RotateKeys(ctx, tc.req())
			wantAPIError(t, err, tc.status, tc.code)
		})
	}
	if st, _ := e.Raw(t, "POST", api.PathCollectorKeys, "", "application/json", []byte(`{}`)); st != http.StatusUnauthorized {
		t.Errorf("rotation without an access token: %d, want 401", st)
	}
	if n := e.AuditLen(t); n != auditsBefore {
		t.Fatalf("refused rotations wrote %d audit entries", n-auditsBefore)
	}

	req := api.SignKeyRotation(c.ID, aud, c.Key, newKey, newHPKE.PublicKey(), time.Now())
	got, err := c.Client.RotateKeys(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	oldFP, newFP := crypto.Fingerprint(c.Key.Public().(ed25519.PublicKey)), crypto.Fingerprint(newKey.Public().(ed25519.PublicKey))
	if got.IdentityKeyFingerprint != newFP || got.HPKEKeyFingerprint != crypto.Fingerprint(newHPKE.PublicKey()) ||
		got.PreviousIdentityKeyFingerprint != oldFP || got.PreviousKeyValidUntil == nil ||
		got.PreviousKeyValidUntil.Sub(e.Clock.Now().Add(grace)).Abs() > time.Minute {
		t.Fatalf("rotation answer = %+v", got)
	}
	if got := audits(t, e, "collector.keys_rotated", c.ID); len(got) != 1 || got[0]["identity_key"] != newFP || got[0]["previous_identity_key"] != oldFP {
		t.Errorf("audit entries = %v", got)
	}
	if v, err := e.Admin.Collector(ctx, c.ID); err != nil || v.IdentityKeyFingerprint != newFP {
		t.Errorf("collector view: %+v, %v", v, err)
	}
	// The same request again: the key it was signed by is not current.
	_, err = c.Client.RotateKeys(ctx, req)
	wantAPIError(t, err, 409, api.CodeConflict)

	// In the grace: the old key's token, and a new one from the old key.
	if err := c.Heartbeat(ctx); err != nil {
		t.Errorf("old key's token in the grace: %v", err)
	}
	stale := api.NewCollectorClient(e.URL, c.ID, c.Key, aud, e.HTTP)
	if err := stale.Heartbeat(ctx, api.Heartbeat{RunnerState: api.RunnerRunning}); err != nil {
		t.Errorf("old key's assertion in the grace: %v", err)
	}
	fresh := api.NewCollectorClient(e.URL, c.ID, newKey, aud, e.HTTP)
	keys, err := fresh.Keys(ctx)
	if err != nil || keys.IdentityKeyFingerprint != newFP || keys.PreviousIdentityKeyFingerprint != oldFP {
		t.Fatalf("keys read with the new key: %+v, %v", keys, err)
	}

	// Jobs are sealed to the new HPKE key from now on.
	in := newJobIntegration(t, e, "ldap", c.ID)
	if _, err := e.Admin.RunIntegration(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	lease, err := fresh.Next(ctx, api.NextRequest{WaitSeconds: 1})
	if err != nil || lease == nil {
		t.Fatalf("lease: %v, %v", lease, err)
	}
	if _, err := crypto.OpenEnvelope(lease.Envelope, c.ID, lease.JobID, newHPKE, c.Enrolled.PlatformSigningKey, e.Clock.Now()); err != nil {
		t.Errorf("envelope after the rotation does not open with the new HPKE key: %v", err)
	}

	// After the grace: neither the old key's tokens nor its assertions.
	e.Clock.Advance(grace + time.Second)
	err = c.Heartbeat(ctx)
	wantAPIError(t, err, 401, api.CodeInvalidAssert)
	if !strings.Contains(e.Logs.String(), `"reason":"signature"`) {
		t.Errorf("the old key's refusal is not logged as a signature failure")
	}
	if err := fresh.Heartbeat(ctx, api.Heartbeat{RunnerState: api.RunnerRunning}); err != nil {
		t.Errorf("new key after the grace: %v", err)
	}
	if keys, err := fresh.Keys(ctx); err != nil || keys.PreviousIdentityKeyFingerprint != "" || keys.PreviousKeyValidUntil != nil {
		t.Errorf("keys after the grace: %+v, %v", keys, err)
	}
}

// FuzzRotateKeysEndpoint: whatever the body, the endpoint answers without
// a 5xx, and takes new keys only from a request the collector's current
// key signed (the seed's signature).
func FuzzRotateKeysEndpoint(f *testing.F) {
	e := platformtest.Start(f)
	c := e.EnrollNew(f, "fuzz")
	tok, err := c.Client.AccessToken(ctx)
	if err != nil {
		f.Fatal(err)
	}
	newKey, newHPKE := platformtest.NewKeys(f)
	req := api.SignKeyRotation(c.ID, e.Server.Audience(), c.Key, newKey, newHPKE.PublicKey(), time.Now())
	valid, err := json.Marshal(req)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"identity_public_key":"AAAA","issued_at":-1}`))
	f.Add([]byte(`{"hpke_public_key":5}`))
	sig := base64.StdEncoding.EncodeToString(req.OldKeySignature)[:20]
	h := e.Server.Handler()
	f.Fuzz(func(t *testing.T, b []byte) {
		if code := fuzzEndpoint(t, h, api.PathCollectorKeys, tok, b); code == 200 && !bytes.Contains(b, []byte(sig)) {
			t.Fatalf("a rotation the current key did not sign was accepted: %s", b)
		}
	})
}
