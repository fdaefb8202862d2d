package trust

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/signature"
)

// Refusals. Verify wraps one of them, so callers test with errors.Is.
var (
	// ErrUnsigned: the image carries no signature.
	ErrUnsigned = errors.New("image is not signed")
	// ErrUntrustedSigner: the image is signed, but by no key the policy trusts.
	ErrUntrustedSigner = errors.New("image is signed by an untrusted key")
	// ErrSignatureMismatch: a trusted signature names another repository.
	ErrSignatureMismatch = errors.New("signature is for another image")
	// ErrDigestMismatch: the image's content is not what was signed (a tag
	// moved after signing with the old signature copied over, or a
	// registry serving other content than the digest asked for).
	ErrDigestMismatch = errors.New("image digest does not match its signature")
	// ErrRegistryUnreachable: the registry could not be reached.
	ErrRegistryUnreachable = errors.New("registry unreachable")
	// ErrImageNotFound: the registry does not have the image.
	ErrImageNotFound = errors.New("image not found in registry")
	// ErrPolicyRejected: the policy rejects the image's repository.
	ErrPolicyRejected = errors.New("image rejected by policy")
	// ErrInvalidReference: the reference cannot be parsed.
	ErrInvalidReference = errors.New("invalid image reference")
	// ErrVerificationFailed: verification could not complete for another
	// reason; the image is refused.
	ErrVerificationFailed = errors.New("image verification failed")
	// ErrInvalidPolicy: the policy document is not valid.
	ErrInvalidPolicy = errors.New("invalid signature policy")
)

// RefusalError is what Verify returns: the image, the digest it resolved
// to (when it got that far) and the reason, one of the sentinels above.
type RefusalError struct {
	Image  string
	Digest string
	Reason error
	Detail string
}

func (e *RefusalError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify image %s", e.Image)
	if e.Digest != "" && !strings.Contains(e.Image, e.Digest) {
		fmt.Fprintf(&b, " (%s)", e.Digest)
	}
	fmt.Fprintf(&b, ": %v", e.Reason)
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	if hint := hints[e.Reason]; hint != "" {
		fmt.Fprintf(&b, " (%s)", hint)
	}
	return b.String()
}

func (e *RefusalError) Unwrap() error { return e.Reason }

// hints say what to do about each refusal.
var hints = map[error]string{
	ErrUnsigned:            "sign the image's digest with collector-release sign, or check the tag was not moved to an unsigned image",
	ErrUntrustedSigner:     "sign it with the key the policy trusts, or add the signer's public key to the policy",
	ErrSignatureMismatch:   "the signature was made for another repository: sign this repository's image",
	ErrDigestMismatch:      "the tag or content changed after signing; do not run it, and re-sign only a digest you trust",
	ErrRegistryUnreachable: "check the registry address, the network and, for a plain-HTTP registry, the insecure registries setting",
	ErrImageNotFound:       "check the image name and tag, and that it was pushed",
	ErrPolicyRejected:      "add a sigstoreSigned requirement for this repository to the policy",
}

// classifyPolicyError maps a containers/image policy evaluation error to a
// refusal. The library reports reasons as texts, so the texts are matched;
// the tests pin each case on a real registry.
func classifyPolicyError(err error) error {
	msg := err.Error()
	var invalid signature.InvalidSignatureError
	switch {
	case strings.Contains(msg, "no signature exists"):
		return ErrUnsigned
	case strings.Contains(msg, "Manifest does not match provided manifest digest"),
		strings.Contains(msg, "Signature for digest") && strings.Contains(msg, "does not match"):
		return ErrDigestMismatch
	case strings.Contains(msg, "Signature for identity") && strings.Contains(msg, "is not accepted"):
		return ErrSignatureMismatch
	case strings.Contains(msg, "cryptographic signature verification failed"), errors.As(err, &invalid):
		return ErrUntrustedSigner
	case strings.Contains(msg, "is rejected by policy"), strings.Contains(msg, "are rejected by policy"):
		return ErrPolicyRejected
	}
	if reason := classifyRegistryError(err); reason != nil {
		return reason
	}
	var pre signature.PolicyRequirementError
	if errors.As(err, &pre) {
		return ErrPolicyRejected
	}
	return ErrVerificationFailed
}

// classifyRegistryError maps an error reaching the registry.
func classifyRegistryError(err error) error {
	var netErr net.Error
	var urlErr *url.Error
	var opErr *net.OpError
	var unauthorized docker.ErrUnauthorizedForCredentials
	switch {
	case errors.As(err, &unauthorized):
		return ErrRegistryUnreachable
	case strings.Contains(err.Error(), "manifest unknown"), strings.Contains(err.Error(), "name unknown"),
		strings.Contains(err.Error(), "not found"):
		return ErrImageNotFound
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &opErr), errors.As(err, &urlErr), errors.As(err, &netErr),
		strings.Contains(err.Error(), "pinging container registry"):
		return ErrRegistryUnreachable
	}
	return nil
}
