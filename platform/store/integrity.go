package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// ErrIntegrity marks a row whose integrity MAC does not verify: it was
// written or edited by something that does not hold the platform's
// integrity key, i.e. not by the platform. Such a row is never trusted.
var ErrIntegrity = errors.New("integrity check failed: the row was not written by this platform")

// IntegrityKeySize is the size of the key of an Integrity, in bytes.
const IntegrityKeySize = 32

// Integrity computes and checks the MACs of the rows the database alone
// must not be able to forge: credentials (enrollment and access tokens,
// the admin token's hash), the collectors' public keys and the audit
// chain. Its key lives outside the database (derived from the platform's
// data key), so write access to the database file is not enough to add a
// collector, swap its keys, mint a token or re-chain the audit log.
type Integrity struct{ key []byte }

// NewIntegrity returns an Integrity with a 32-byte key.
func NewIntegrity(key []byte) (*Integrity, error) {
	if len(key) != IntegrityKeySize {
		return nil, fmt.Errorf("integrity key: %d bytes, want %d", len(key), IntegrityKeySize)
	}
	return &Integrity{key: append([]byte(nil), key...)}, nil
}

// Domains keep a MAC made for one kind of row from verifying another.
const (
	MACCollectorKeys   = "collector-keys-v1"
	MACEnrollmentToken = "enrollment-token-v1"
	MACAccessToken     = "access-token-v1"
	MACSetting         = "setting-v1"
	MACAudit           = "audit-v1"
)

// Sum returns the HMAC-SHA256 of domain and fields, each length-prefixed
// so that no two field lists share an encoding.
func (i *Integrity) Sum(domain string, fields ...[]byte) []byte {
	m := hmac.New(sha256.New, i.key)
	writeLP(m, []byte(domain))
	for _, f := range fields {
		writeLP(m, f)
	}
	return m.Sum(nil)
}

// Verify reports whether mac is Sum(domain, fields...), in constant time.
func (i *Integrity) Verify(mac []byte, domain string, fields ...[]byte) bool {
	return len(mac) == sha256.Size && hmac.Equal(mac, i.Sum(domain, fields...))
}

func writeLP(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// Int64 encodes n for Sum.
func Int64(n int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return b[:]
}
