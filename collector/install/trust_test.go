package install_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/trust"
)

func newKey(t *testing.T) (pemKey []byte, fingerprint string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), trust.Fingerprint(der)
}

// signedPolicy trusts each key for its own repository of reg.example.
func signedPolicy(keys ...[]byte) []byte {
	docker := map[string]any{}
	for i, k := range keys {
		docker[fmt.Sprintf("reg.example/repo%d", i)] = []any{map[string]any{"type": "sigstoreSigned", "keyData": k,
			"signedIdentity": map[string]string{"type": "matchRepository"}}}
	}
	b, _ := json.Marshal(map[string]any{"default": []any{map[string]string{"type": "reject"}}, "transports": map[string]any{"docker": docker}})
	return b
}

var insecurePolicy = []byte(`{"default": [{"type": "insecureAcceptAnything"}]}`)

type printed struct{ strings.Builder }

func (p *printed) f(format string, args ...any) { fmt.Fprintf(&p.Builder, format+"\n", args...) }

func TestApprovePolicyPinsOnFirstUse(t *testing.T) {
	dir := t.TempDir()
	k, fp := newKey(t)
	var out printed
	if _, err := install.ApprovePolicy(dir, signedPolicy(k), install.TrustOptions{}, out.f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "TRUST ON FIRST USE") || !strings.Contains(out.String(), fp) {
		t.Errorf("the pinning is not said clearly with the key's fingerprint:\n%s", out.String())
	}
	file := filepath.Join(dir, config.TrustedKeysFile)
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want mode 0600", file, st, err)
	}
	// A later policy (a new enrollment) with another key is refused ...
	other, otherFP := newKey(t)
	_, err = install.ApprovePolicy(dir, signedPolicy(k, other), install.TrustOptions{}, (&printed{}).f)
	if !errors.Is(err, trust.ErrUnapprovedKey) || !strings.Contains(err.Error(), otherFP) {
		t.Fatalf("a later policy with a new key = %v, want ErrUnapprovedKey naming %s", err, otherFP)
	}
	// ... until the operator approves it.
	if _, err := install.ApprovePolicy(dir, signedPolicy(k, other), install.TrustOptions{Keys: other}, (&printed{}).f); err != nil {
		t.Fatalf("the same policy with the key approved by the operator: %v", err)
	}
	data, _, _ := config.ReadTrustedKeys(dir)
	if root, _ := trust.ParseRoot(data); root.Len() != 2 {
		t.Errorf("trusted keys after the approval: %d, want 2", root.Len())
	}
}

func TestApprovePolicyOperatorKeys(t *testing.T) {
	mine, _ := newKey(t)
	theirs, theirFP := newKey(t)
	// The operator's key is the trust root: the platform's other key is
	// refused, nothing is pinned, and the enrollment can be retried.
	dir := t.TempDir()
	_, err := install.ApprovePolicy(dir, signedPolicy(theirs), install.TrustOptions{Keys: mine}, (&printed{}).f)
	if !errors.Is(err, trust.ErrUnapprovedKey) || !strings.Contains(err.Error(), theirFP) {
		t.Fatalf("a policy with a key the operator did not give = %v, want ErrUnapprovedKey naming it", err)
	}
	if _, exists, _ := config.ReadTrustedKeys(dir); exists {
		t.Errorf("a refused policy left a trust root behind")
	}
	if _, err := install.ApprovePolicy(dir, signedPolicy(mine), install.TrustOptions{Keys: mine}, (&printed{}).f); err != nil {
		t.Fatalf("a policy with the operator's key: %v", err)
	}
	// Keys given as garbage are an error, not an empty root (which would pin).
	if _, err := install.ApprovePolicy(t.TempDir(), signedPolicy(mine), install.TrustOptions{Keys: []byte("-----BEGIN PUBLIC KEY-----\nnot base64\n")}, (&printed{}).f); err == nil {
		t.Error("unparsable operator keys: want an error")
	}
}

func TestApprovePolicyInsecure(t *testing.T) {
	dir := t.TempDir()
	_, err := install.ApprovePolicy(dir, insecurePolicy, install.TrustOptions{}, (&printed{}).f)
	if !errors.Is(err, trust.ErrInsecurePolicy) || !strings.Contains(err.Error(), "COLLECTOR_ALLOW_INSECURE_POLICY=1") {
		t.Fatalf("insecureAcceptAnything = %v, want ErrInsecurePolicy saying how to allow it", err)
	}
	var out printed
	if _, err := install.ApprovePolicy(dir, insecurePolicy, install.TrustOptions{AllowInsecure: true}, out.f); err != nil {
		t.Fatalf("insecureAcceptAnything allowed by the operator: %v", err)
	}
	if !strings.Contains(out.String(), "WARNING") {
		t.Errorf("an allowed insecure policy is not warned about:\n%s", out.String())
	}
	// Allowing unsigned images pinned no key: a later signed policy may
	// not bring its own.
	k, _ := newKey(t)
	if _, err := install.ApprovePolicy(dir, signedPolicy(k), install.TrustOptions{}, (&printed{}).f); !errors.Is(err, trust.ErrUnapprovedKey) {
		t.Errorf("a signed policy after an insecure first one = %v, want ErrUnapprovedKey", err)
	}
}

func TestSocketMount(t *testing.T) {
	for _, tc := range []struct {
		socket    string
		dedicated bool
		source    string
	}{
		{"/run/podman/podman.sock", true, "/run/podman"},
		{"/run/user/1000/podman/podman.sock", true, "/run/user/1000/podman"},
		{"/var/run/docker.sock", false, "/var/run/docker.sock"},
		{"/run/docker.sock", false, "/run/docker.sock"},
		{"/run/user/1000/docker.sock", false, "/run/user/1000/docker.sock"},
		{"/tmp/docker.sock", false, "/tmp/docker.sock"},
		{"/run/docker-api/docker.sock", true, "/run/docker-api"},
	} {
		m, dedicated := install.SocketMount(tc.socket)
		if dedicated != tc.dedicated || m.Source != tc.source || m.Target != tc.source || (dedicated && !m.ReadOnly) {
			t.Errorf("SocketMount(%s) = %+v, %v; want source and target %s, dedicated %v (read-only if so)", tc.socket, m, dedicated, tc.source, tc.dedicated)
		}
	}
}
