// Package manifest reads an integration's manifest: its name, version and
// description, the JSON Schema of its config (which fields are secret),
// the resources and network it needs, and whether it has a validate mode
// (docs/integration-contract.md, "Manifest").
//
// An author writes the manifest as integration.yaml (or JSON) next to the
// integration; `collector-release build` resolves it (Load) and stores it,
// as one JSON object, in the image label Label, where the platform and
// `collector run-local` read it back (Parse). A label comes from an image,
// signed or not, so Parse treats it as untrusted input: bounded in size,
// strict JSON (no YAML), every field checked, the schema compiled with no
// loader (a $ref outside the document fails instead of fetching it).
package manifest
