package integration

// An integration's image is FROM scratch: no CA bundle, so Go finds no
// system roots in it, and "the system's roots" (an LDAPS server without
// ca_cert, an HTTPS API, a proxy that tunnels) would trust nothing,
// pushing operators towards skipping verification. The SDK embeds
// Mozilla's roots (golang.org/x/crypto/x509roots/fallback, pinned by
// go.mod, so builds stay reproducible); Go uses them only where the system
// has none, so a host or image with its own bundle keeps it.
import _ "golang.org/x/crypto/x509roots/fallback"
