package trust

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.podman.io/image/v5/signature"
)

// Refusals of a policy by the operator's trust root. CheckPolicy wraps one
// of them.
var (
	// ErrInsecurePolicy: the policy accepts images without a signature
	// (insecureAcceptAnything) and the operator did not allow it.
	ErrInsecurePolicy = errors.New("the image policy accepts unsigned images")
	// ErrUnapprovedKey: the policy trusts a signing key the operator did
	// not approve.
	ErrUnapprovedKey = errors.New("the image policy trusts a signing key the operator did not approve")
	// ErrNoSignatureRequirement: the policy requires no signature anywhere,
	// so it accepts no image.
	ErrNoSignatureRequirement = errors.New("the image policy requires no sigstore signature")
	// ErrUnsupportedRequirement: a requirement whose keys the collector
	// cannot check against its trust root (keyPath, Fulcio, GPG).
	ErrUnsupportedRequirement = errors.New("the image policy has a requirement the collector cannot check")
)

// Root is the operator's image trust root: the public keys image
// signatures may be made with. The collector owns it; a policy from the
// platform may only use keys in it.
type Root struct {
	keys map[string][]byte // fingerprint → DER (SubjectPublicKeyInfo)
}

// ParseRoot parses PEM "PUBLIC KEY" blocks (a cosign .pub file, or several
// concatenated). Text around the blocks is ignored; anything else is an
// error. Empty data is an empty root.
func ParseRoot(data []byte) (*Root, error) {
	r := &Root{keys: map[string][]byte{}}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY blocks (a cosign .pub file)", block.Type)
		}
		if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		r.keys[Fingerprint(block.Bytes)] = bytes.Clone(block.Bytes)
	}
	if len(r.keys) == 0 && strings.Contains(string(data), "-----BEGIN") {
		return nil, errors.New("no valid PEM block")
	}
	return r, nil
}

// Fingerprint of a public key is the SHA-256 of its DER encoding: what
// `openssl pkey -pubin -in key.pub -outform DER | sha256sum` prints.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Len is the number of keys.
func (r *Root) Len() int { return len(r.keys) }

// Fingerprints lists the keys' fingerprints, sorted.
func (r *Root) Fingerprints() []string {
	var out []string
	for f := range r.keys {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Has reports whether the key with this fingerprint is in the root.
func (r *Root) Has(fingerprint string) bool { _, ok := r.keys[fingerprint]; return ok }

// Add adds other's keys and returns the fingerprints that were new.
func (r *Root) Add(other *Root) []string {
	var added []string
	for _, f := range other.Fingerprints() {
		if !r.Has(f) {
			r.keys[f] = other.keys[f]
			added = append(added, f)
		}
	}
	return added
}

// PEM encodes the root, one block per key, each after a comment line
// with its fingerprint.
func (r *Root) PEM() []byte {
	var b bytes.Buffer
	for _, f := range r.Fingerprints() {
		fmt.Fprintf(&b, "# %s\n", f)
		pem.Encode(&b, &pem.Block{Type: "PUBLIC KEY", Bytes: r.keys[f]})
	}
	return b.Bytes()
}

// requirement is a policy requirement as far as the trust root cares.
type requirement struct {
	Type     string          `json:"type"`
	KeyData  []byte          `json:"keyData"`
	KeyDatas [][]byte        `json:"keyDatas"`
	KeyPath  string          `json:"keyPath"`
	KeyPaths []string        `json:"keyPaths"`
	Fulcio   json.RawMessage `json:"fulcio"`
	PKI      json.RawMessage `json:"pki"`
}

type scopedRequirement struct {
	scope string
	req   requirement
}

// requirements lists every requirement of a policy.json with its scope
// ("default", or "docker:registry/namespace").
func requirements(policy []byte) ([]scopedRequirement, error) {
	if _, err := signature.NewPolicyFromBytes(policy); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	var raw struct {
		Default    []requirement                       `json:"default"`
		Transports map[string]map[string][]requirement `json:"transports"`
	}
	if err := json.Unmarshal(policy, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	var out []scopedRequirement
	for _, r := range raw.Default {
		out = append(out, scopedRequirement{"default", r})
	}
	transports := make([]string, 0, len(raw.Transports))
	for t := range raw.Transports {
		transports = append(transports, t)
	}
	sort.Strings(transports)
	for _, t := range transports {
		scopes := make([]string, 0, len(raw.Transports[t]))
		for s := range raw.Transports[t] {
			scopes = append(scopes, s)
		}
		sort.Strings(scopes)
		for _, s := range scopes {
			for _, r := range raw.Transports[t][s] {
				out = append(out, scopedRequirement{t + ":" + s, r})
			}
		}
	}
	return out, nil
}

// keys parses the inline keys of a sigstoreSigned requirement.
func (r requirement) keys() (*Root, error) {
	root := &Root{keys: map[string][]byte{}}
	for _, d := range append([][]byte{r.KeyData}, r.KeyDatas...) {
		if len(d) == 0 {
			continue
		}
		k, err := ParseRoot(d)
		if err != nil {
			return nil, err
		}
		root.Add(k)
	}
	return root, nil
}

// PolicyKeys returns the keys the policy's sigstoreSigned requirements
// name inline (keyData, keyDatas): what trust on first use pins.
func PolicyKeys(policy []byte) (*Root, error) {
	reqs, err := requirements(policy)
	if err != nil {
		return nil, err
	}
	root := &Root{keys: map[string][]byte{}}
	for _, sr := range reqs {
		if sr.req.Type != "sigstoreSigned" {
			continue
		}
		k, err := sr.req.keys()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, sr.scope, err)
		}
		root.Add(k)
	}
	return root, nil
}

// CheckPolicy refuses a policy (from the platform) that the operator's
// trust root does not cover. Every requirement must be "reject" or
// "sigstoreSigned" with inline keys all in root, and at least one must be
// sigstoreSigned; "insecureAcceptAnything" passes only with allowInsecure
// (a local choice of the operator, never the platform's).
func CheckPolicy(policy []byte, root *Root, allowInsecure bool) error {
	reqs, err := requirements(policy)
	if err != nil {
		return err
	}
	signed, insecure := 0, 0
	for _, sr := range reqs {
		switch r := sr.req; r.Type {
		case "reject":
		case "insecureAcceptAnything":
			if !allowInsecure {
				return fmt.Errorf("%w: scope %s is insecureAcceptAnything: give it a sigstoreSigned requirement on the platform (docs/images.md), "+
					"or, on a test host only, run the installer with COLLECTOR_ALLOW_INSECURE_POLICY=1", ErrInsecurePolicy, sr.scope)
			}
			insecure++
		case "sigstoreSigned":
			if err := checkSigned(sr.scope, r, root); err != nil {
				return err
			}
			signed++
		default:
			return fmt.Errorf("%w: scope %s is %q: the collector trusts sigstoreSigned requirements with inline keys (keyData) only",
				ErrUnsupportedRequirement, sr.scope, r.Type)
		}
	}
	if signed == 0 && insecure == 0 {
		return fmt.Errorf("%w: it would refuse every image: give the collector's and the integrations' repositories a sigstoreSigned requirement", ErrNoSignatureRequirement)
	}
	return nil
}

func checkSigned(scope string, r requirement, root *Root) error {
	if r.KeyPath != "" || len(r.KeyPaths) > 0 || len(r.Fulcio) > 0 || len(r.PKI) > 0 {
		return fmt.Errorf("%w: scope %s names its key by path or by a certificate authority: the collector checks keys by content, so the platform must send them as keyData",
			ErrUnsupportedRequirement, scope)
	}
	keys, err := r.keys()
	if err != nil {
		return fmt.Errorf("%w: scope %s: %v", ErrInvalidPolicy, scope, err)
	}
	if keys.Len() == 0 {
		return fmt.Errorf("%w: scope %s is sigstoreSigned without a key", ErrInvalidPolicy, scope)
	}
	for _, f := range keys.Fingerprints() {
		if !root.Has(f) {
			return fmt.Errorf("%w: scope %s trusts key %s; if you trust it, add it to the collector's trusted keys "+
				"(append its PEM to /etc/collector/trusted-keys.pem, or re-run the installer with COLLECTOR_TRUSTED_KEYS), else fix the platform's policy",
				ErrUnapprovedKey, scope, f)
		}
	}
	return nil
}
