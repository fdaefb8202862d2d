// Package platform is the Collector control plane's HTTPS server: collectors
// and their one-time enrollment, collector authentication (signed assertion
// for a short-lived access token), heartbeats, integrations with their
// secrets sealed at rest, the hash-chained audit log, and Prometheus metrics.
//
// It keeps its state behind store.Store (the backend is chosen by the caller)
// and never imports the container engine: the collector side meets it only
// through api/ and crypto/, over HTTPS.
package platform
