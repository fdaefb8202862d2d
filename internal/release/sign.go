package release

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
)

// Errors at the package boundary.
var (
	// ErrBadKey: the key cannot be read or decrypted.
	ErrBadKey = errors.New("bad key")
	// ErrNoValidSignature: no signature on the image verifies with the key.
	ErrNoValidSignature = errors.New("no valid signature")
)

// Options are the registry knobs of Sign and Verify.
type Options struct {
	// Insecure reaches the registry over plain HTTP, or over TLS without
	// verifying its certificate (a local registry on 127.0.0.1).
	Insecure bool
	// UserAgent names the caller to the registry.
	UserAgent string
}

func (o Options) nameOptions() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (o Options) clientOptions(ctx context.Context) []ociremote.Option {
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if o.UserAgent != "" {
		ropts = append(ropts, remote.WithUserAgent(o.UserAgent))
	}
	if o.Insecure {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for, for local registries
		ropts = append(ropts, remote.WithTransport(t))
	}
	return []ociremote.Option{ociremote.WithRemoteOptions(ropts...), ociremote.WithNameOptions(o.nameOptions()...)}
}

// Resolve returns ref as a digest reference (name@sha256:...), asking the
// registry for the digest a tag points at.
func Resolve(ctx context.Context, ref string, opts Options) (name.Digest, error) {
	r, err := name.ParseReference(ref, opts.nameOptions()...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("parse reference %q: %w", ref, err)
	}
	d, err := ociremote.ResolveDigest(r, opts.clientOptions(ctx)...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	return d, nil
}

// LoadSigner decrypts a cosign private key.
func LoadSigner(key, password []byte) (signature.SignerVerifier, error) {
	sv, err := cosign.LoadPrivateKey(key, password, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: load private key (is %s right?): %v", ErrBadKey, PasswordEnv, err)
	}
	return sv, nil
}

// Sign signs the image ref (a tag is resolved to its digest first: the
// digest is what gets signed) with the cosign private key, and stores the
// signature in the image's repository as a sigstore attachment. Nothing is
// sent to a transparency log. It returns the signed digest reference.
func Sign(ctx context.Context, ref string, key, password []byte, opts Options) (string, error) {
	sv, err := LoadSigner(key, password)
	if err != nil {
		return "", err
	}
	return SignWith(ctx, ref, sv, opts)
}

// SignWith is Sign with a loaded signer.
func SignWith(ctx context.Context, ref string, sv signature.SignerVerifier, opts Options) (string, error) {
	digest, err := Resolve(ctx, ref, opts)
	if err != nil {
		return "", err
	}
	payload, err := (&sigpayload.Cosign{Image: digest}).MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("sign %s: payload: %w", digest, err)
	}
	raw, err := sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", digest, err)
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", digest, err)
	}
	copts := opts.clientOptions(ctx)
	se, err := ociremote.SignedEntity(digest, copts...)
	if err != nil {
		return "", fmt.Errorf("sign %s: read image: %w", digest, err)
	}
	// The dupe detector keeps one signature per key: signing twice adds nothing.
	signed, err := mutate.AttachSignatureToEntity(se, sig, mutate.WithDupeDetector(cremote.NewDupeDetector(sv)))
	if err != nil {
		return "", fmt.Errorf("sign %s: attach: %w", digest, err)
	}
	if err := ociremote.WriteSignatures(digest.Repository, signed, copts...); err != nil {
		return "", fmt.Errorf("sign %s: push signature: %w", digest, err)
	}
	return digest.String(), nil
}

// Verify checks that ref carries a valid signature by the public key (PEM)
// and returns its digest reference and how many signatures verified.
func Verify(ctx context.Context, ref string, publicKey []byte, opts Options) (string, int, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(publicKey)
	if err != nil {
		return "", 0, fmt.Errorf("%w: public key: %v", ErrBadKey, err)
	}
	verifier, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return "", 0, fmt.Errorf("%w: public key: %v", ErrBadKey, err)
	}
	digest, err := Resolve(ctx, ref, opts)
	if err != nil {
		return "", 0, err
	}
	sigs, _, err := cosign.VerifyImageSignatures(ctx, digest, &cosign.CheckOpts{
		RegistryClientOpts: opts.clientOptions(ctx),
		SigVerifier:        verifier,
		ClaimVerifier:      cosign.SimpleClaimVerifier,
		IgnoreTlog:         true,
		IgnoreSCT:          true,
		Offline:            true,
	})
	if err != nil {
		return "", 0, fmt.Errorf("verify %s: %w: %v", digest, ErrNoValidSignature, err)
	}
	return digest.String(), len(sigs), nil
}
