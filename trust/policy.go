package trust

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// dockerTransport is the policy.json transport name of registry images.
const dockerTransport = "docker"

// Policy is a parsed containers/image policy.
type Policy struct {
	policy *signature.Policy
	raw    []byte
}

// ParsePolicy parses a policy.json document. An empty document is refused:
// a policy that accepts everything must say so ("insecureAcceptAnything").
// Relative keyPath values are not resolved: use absolute paths or keyData.
func ParsePolicy(data []byte) (*Policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: the policy is empty; write one (docs/images.md), even to accept everything", ErrInvalidPolicy)
	}
	p, err := signature.NewPolicyFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	return &Policy{policy: p, raw: bytes.Clone(data)}, nil
}

// requirements returns the requirements that apply to ref, choosing the
// scope as containers/image does: the exact identity, then each enclosing
// namespace from the most specific, then the transport's "" scope, then
// the policy's default.
func (p *Policy) requirements(ref types.ImageReference) signature.PolicyRequirements {
	if scopes, ok := p.policy.Transports[dockerTransport]; ok {
		if reqs, ok := scopes[ref.PolicyConfigurationIdentity()]; ok {
			return reqs
		}
		for _, ns := range ref.PolicyConfigurationNamespaces() {
			if reqs, ok := scopes[ns]; ok {
				return reqs
			}
		}
		if reqs, ok := scopes[""]; ok {
			return reqs
		}
	}
	return p.policy.Default
}

// acceptsAnything reports whether one of reqs is insecureAcceptAnything.
func acceptsAnything(reqs signature.PolicyRequirements) bool {
	for _, r := range reqs {
		b, err := json.Marshal(r)
		if err != nil {
			continue
		}
		var t struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &t) == nil && t.Type == "insecureAcceptAnything" {
			return true
		}
	}
	return false
}

// SigstorePolicy returns a policy that rejects every image except those of
// the given scopes (registry host[:port], host/namespace or repository),
// which must carry a cosign signature by publicKey (PEM).
func SigstorePolicy(publicKey []byte, scopes ...string) []byte {
	req := []map[string]any{{
		"type":           "sigstoreSigned",
		"keyData":        publicKey,
		"signedIdentity": map[string]string{"type": "matchRepository"},
	}}
	docker := map[string]any{}
	for _, s := range scopes {
		docker[s] = req
	}
	b, _ := json.MarshalIndent(map[string]any{
		"default":    []map[string]string{{"type": "reject"}},
		"transports": map[string]any{dockerTransport: docker},
	}, "", "  ")
	return b
}
