// Package trust verifies a container image's signature before it is
// pulled, and pulls it by digest only once verified.
//
// The policy is a containers/image policy.json document (man 5
// containers-policy.json) whose requirements for the images the collector
// runs are "sigstoreSigned": a cosign public key (keyPath or keyData) and
// signedIdentity {"type": "matchRepository"}, since a cosign signature
// names the repository, not the tag. Signatures are cosign's sigstore
// attachments in the registry (the sha256-<hex>.sig tag next to the image),
// made by cmd/collector-release.
//
// Verify resolves a reference to its digest over the registry, opens the
// image by that digest and checks the policy on it; the collector then asks
// its engine to pull name@sha256:..., which is the reference containers
// must be created from, and pulls nothing for a refused image. The
// platform verifies an integration's image the same way when it is saved,
// and reads its labels (Labels). The package knows no container engine, so
// the platform can link it. Refusals are
// the sentinel errors of this package (ErrUnsigned, ErrUntrustedSigner,
// ...), each with a message saying what happened and what to do.
//
// This package uses containers/image only: it must not link cosign, which
// belongs to the release tool.
package trust
