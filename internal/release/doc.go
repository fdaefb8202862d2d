// Package release signs and verifies Collector's container images with
// cosign key pairs, offline: no transparency log, no Fulcio. Signatures are
// stored in the registry as cosign's sigstore attachments (the
// sha256-<hex>.sig tag next to the image), which both cosign and
// containers/image (the collector's trust package) read.
//
// Only the release tool (cmd/collector-release) imports this package: it
// links cosign, which must stay out of the collector and platform binaries
// (cmd/depcheck_test.go).
package release
