package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/collectorhq/collector/internal/env"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/trust"
)

// worldKey is the release key the harness signs the images with (PEM).
func worldKey(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(world.dir, "keys", "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func worldKeyFingerprint(t *testing.T) string {
	t.Helper()
	r, err := trust.ParseRoot(worldKey(t))
	if err != nil || r.Len() != 1 {
		t.Fatalf("the harness's release key: %v", err)
	}
	return r.Fingerprints()[0]
}

func newPublicKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestEndToEndTrustRoot: the collector, not the platform, owns its image
// trust root. The installer refuses a platform policy that accepts
// unsigned images unless the operator allows it on the host, and a policy
// whose key the operator did not approve; the enrollment is kept, so the
// operator's decision needs no new token.
func TestEndToEndTrustRoot(t *testing.T) {
	need(t)
	k := podmanKit(t)
	ctx := context.Background()
	noContainers := func(t *testing.T, h *host) {
		t.Helper()
		for _, n := range []string{"collector-daemon", "collector-runner"} {
			if _, err := h.eng.InspectContainer(ctx, n); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("%s exists after a refused policy (%v)", n, err)
			}
		}
	}

	t.Run("InsecurePlatformPolicyRefused", func(t *testing.T) {
		pol := filepath.Join(t.TempDir(), "insecure-policy.json")
		if err := os.WriteFile(pol, []byte(`{"default": [{"type": "insecureAcceptAnything"}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startPlatformWith(t, pol)
		h, vars, token := newHost(t, p, k)
		out, err := h.runInstaller(vars, token)
		if err == nil || !strings.Contains(out, "insecureAcceptAnything") || !strings.Contains(out, "COLLECTOR_ALLOW_INSECURE_POLICY=1") {
			t.Fatalf("installer under an insecureAcceptAnything policy: %v\n%s\nwant a refusal saying how to allow it", err, out)
		}
		h.open(t)
		noContainers(t, h)
		// The operator allows it on this host: the enrollment is kept.
		vars[env.AllowInsecurePolicy] = "1"
		out, err = h.runInstaller(vars, "burned-token")
		if err != nil || !strings.Contains(out, "keeping it") || !strings.Contains(out, "WARNING") {
			t.Fatalf("installer with COLLECTOR_ALLOW_INSECURE_POLICY=1: %v\n%s", err, out)
		}
	})

	t.Run("PlatformKeyNotApprovedRefused", func(t *testing.T) {
		p := startPlatform(t)
		h, vars, token := newHost(t, p, k)
		mine := newPublicKeyPEM(t)
		vars[env.TrustedKeys] = string(mine)
		out, err := h.runInstaller(vars, token)
		fp := worldKeyFingerprint(t)
		if err == nil || !strings.Contains(out, "did not approve") || !strings.Contains(out, fp) {
			t.Fatalf("installer with the operator's key, the platform's policy on another: %v\n%s\nwant a refusal naming %s", err, out, fp)
		}
		h.open(t)
		noContainers(t, h)
		// The operator approves the release key too.
		vars[env.TrustedKeys] = string(mine) + string(worldKey(t))
		out, err = h.runInstaller(vars, "burned-token")
		if err != nil || !strings.Contains(out, fp) {
			t.Fatalf("installer with the release key approved: %v\n%s", err, out)
		}
		data, exists, err := config.ReadTrustedKeys(h.etc)
		root, perr := trust.ParseRoot(data)
		if !exists || err != nil || perr != nil || root.Len() != 2 || !root.Has(fp) {
			t.Errorf("trusted keys after the approval: %v %v %v %v", exists, err, perr, root)
		}
		if st, err := os.Stat(filepath.Join(h.etc, config.TrustedKeysFile)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v; want 0600", config.TrustedKeysFile, err)
		}
	})
}
