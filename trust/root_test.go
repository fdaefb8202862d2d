package trust_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	envs "github.com/collectorhq/collector/internal/env"

	"github.com/collectorhq/collector/trust"
)

// newPublicKey returns a fresh P-256 public key as PEM (a cosign .pub).
func newPublicKey(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func fingerprint(t *testing.T, pemKey []byte) string {
	b, _ := pem.Decode(pemKey)
	return trust.Fingerprint(b.Bytes)
}

func rootOf(t *testing.T, keys ...[]byte) *trust.Root {
	t.Helper()
	r, err := trust.ParseRoot([]byte(strings.Join(bytesToStrings(keys), "")))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func bytesToStrings(b [][]byte) []string {
	var out []string
	for _, x := range b {
		out = append(out, string(x))
	}
	return out
}

// policy writes a policy.json: scope → requirements.
func policy(t *testing.T, def []map[string]any, docker map[string][]map[string]any) []byte {
	t.Helper()
	if def == nil {
		def = []map[string]any{{"type": "reject"}}
	}
	doc := map[string]any{"default": def}
	if docker != nil {
		doc["transports"] = map[string]any{"docker": docker}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signedBy(keys ...[]byte) map[string]any {
	r := map[string]any{"type": "sigstoreSigned", "signedIdentity": map[string]string{"type": "matchRepository"}}
	if len(keys) == 1 {
		r["keyData"] = keys[0]
	} else {
		r["keyDatas"] = keys
	}
	return r
}

func TestCheckPolicy(t *testing.T) {
	a, b := newPublicKey(t), newPublicKey(t)
	insecure := []map[string]any{{"type": "insecureAcceptAnything"}}
	for _, tc := range []struct {
		name          string
		policy        []byte
		root          *trust.Root
		allowInsecure bool
		want          error // nil: accepted
		says          []string
	}{
		{"operator's key accepted", policy(t, nil, map[string][]map[string]any{"reg.example/collectorhq": {signedBy(a)}}), rootOf(t, a), false, nil, nil},
		{"two approved keys", policy(t, nil, map[string][]map[string]any{"reg.example": {signedBy(a, b)}}), rootOf(t, a, b), false, nil, nil},
		{"insecureAcceptAnything refused", policy(t, insecure, nil), rootOf(t, a), false, trust.ErrInsecurePolicy,
			[]string{"default", "COLLECTOR_ALLOW_INSECURE_POLICY=1"}},
		{"insecure scope next to a signed one refused", policy(t, nil, map[string][]map[string]any{
			"reg.example/collectorhq": {signedBy(a)}, "reg.example/other": {{"type": "insecureAcceptAnything"}}}), rootOf(t, a), false,
			trust.ErrInsecurePolicy, []string{"docker:reg.example/other"}},
		{"insecure allowed by the operator", policy(t, insecure, nil), rootOf(t), true, nil, nil},
		{"unapproved key refused", policy(t, nil, map[string][]map[string]any{"reg.example": {signedBy(b)}}), rootOf(t, a), false,
			trust.ErrUnapprovedKey, []string{fingerprint(t, b), "trusted-keys.pem", envs.TrustedKeys}},
		{"one unapproved key among approved ones refused", policy(t, nil, map[string][]map[string]any{"reg.example": {signedBy(a, b)}}), rootOf(t, a), false,
			trust.ErrUnapprovedKey, []string{fingerprint(t, b)}},
		{"the insecure flag does not approve keys", policy(t, nil, map[string][]map[string]any{"reg.example": {signedBy(b)}}), rootOf(t, a), true,
			trust.ErrUnapprovedKey, nil},
		{"no signature requirement refused", policy(t, nil, nil), rootOf(t, a), false, trust.ErrNoSignatureRequirement, nil},
		{"key by path refused", policy(t, nil, map[string][]map[string]any{"reg.example": {{"type": "sigstoreSigned", "keyPath": "/etc/collector/identity.key",
			"signedIdentity": map[string]string{"type": "matchRepository"}}}}), rootOf(t, a), false, trust.ErrUnsupportedRequirement, []string{"keyData"}},
		{"GPG requirement refused", policy(t, nil, map[string][]map[string]any{"reg.example": {{"type": "signedBy", "keyType": "GPGKeys", "keyData": a}}}),
			rootOf(t, a), false, trust.ErrUnsupportedRequirement, nil},
		{"invalid policy", []byte(`{"default": [{"type": "nonsense"}]}`), rootOf(t, a), false, trust.ErrInvalidPolicy, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := trust.CheckPolicy(tc.policy, tc.root, tc.allowInsecure)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckPolicy = %v, want accepted", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("CheckPolicy = %v, want %v", err, tc.want)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("refusal %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestPolicyKeysAndRoot(t *testing.T) {
	a, b := newPublicKey(t), newPublicKey(t)
	p := policy(t, nil, map[string][]map[string]any{"r1": {signedBy(a)}, "r2": {signedBy(a, b)}})
	keys, err := trust.PolicyKeys(p)
	if err != nil {
		t.Fatal(err)
	}
	want := rootOf(t, a, b).Fingerprints()
	if got := keys.Fingerprints(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("PolicyKeys = %v, want %v", got, want)
	}
	// The root's PEM reads back as the same keys.
	again, err := trust.ParseRoot(keys.PEM())
	if err != nil || strings.Join(again.Fingerprints(), ",") != strings.Join(want, ",") {
		t.Errorf("ParseRoot(PEM()) = %v, %v", again.Fingerprints(), err)
	}
	if _, err := trust.ParseRoot([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")); err == nil {
		t.Error("ParseRoot of a private key: want an error")
	}
}
