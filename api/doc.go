// Package api holds the platform's HTTP wire format, shared by both sides:
// the request and response types, the strict JSON decoder the server uses,
// the AdminClient the admin CLI uses and the CollectorClient the collector
// uses. Clients take an *http.Client so that the caller decides on TLS (a CA
// file, or a pinned CA for the collector; see PinnedTLSConfig).
//
// The endpoints are documented in docs/api.md.
package api
