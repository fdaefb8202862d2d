// Package crypto owns every cryptographic format that crosses the trust
// boundary between the platform and a collector (see ARCHITECTURE.md §3):
//
//   - identity and job-decryption keys of a collector (Ed25519 and HPKE with
//     the post-quantum hybrid KEM MLKEM768X25519), and their PEM files;
//   - the collector's client assertion, a 60-second EdDSA JWT that the
//     platform exchanges for a short-lived access token (RFC 7523 pattern,
//     docs/auth.md);
//   - the job envelope: a job sealed with HPKE to one collector and signed
//     by the platform (docs/envelope.md);
//   - sealing of secrets at rest on the platform (AES-256-GCM) under a key
//     ring, each value naming its key, and the data key file that holds
//     the ring;
//   - random bearer tokens (enrollment tokens and the like) and the hash the
//     platform stores in their place.
//
// The package holds no state, does no I/O and logs nothing: callers pass
// keys, clocks and key look-ups in, and get sentinel errors back that they
// can test with errors.Is.
package crypto
