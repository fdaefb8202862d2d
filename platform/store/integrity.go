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
// the admin token's hash), the collectors' public keys and pool
// memberships, and the audit chain. Its key lives outside the database
// (derived from the platform's data key), so write access to the database
// file is not enough to add a collector, swap its keys, move it into a
// pool (whose jobs carry the pool's secrets), mint a token or re-chain the
// audit log.
//
// During a data key rotation it holds a ring: MACs are written under the
// current key and verify under any key of the ring, until `platform keys
// rotate` has re-computed every MAC under the current one.
type Integrity struct{ keys [][]byte }

// NewIntegrity returns an Integrity with a 32-byte key, and older keys
// whose MACs still verify.
func NewIntegrity(key []byte, older ...[]byte) (*Integrity, error) {
	i := &Integrity{}
	for n, k := range append([][]byte{key}, older...) {
		if len(k) != IntegrityKeySize {
			return nil, fmt.Errorf("integrity key %d: %d bytes, want %d", n+1, len(k), IntegrityKeySize)
		}
		i.keys = append(i.keys, append([]byte(nil), k...))
	}
	return i, nil
}

// Ring returns an Integrity of each key alone, the current one first:
// rotation finds which key a MAC is under by computing it with each.
func (i *Integrity) Ring() []*Integrity {
	out := make([]*Integrity, len(i.keys))
	for n, k := range i.keys {
		out[n] = &Integrity{keys: [][]byte{k}}
	}
	return out
}

// Domains keep a MAC made for one kind of row from verifying another.
const (
	MACCollectorKeys   = "collector-keys-v1"
	MACCollectorPool   = "collector-pool-v1"
	MACEnrollmentToken = "enrollment-token-v1"
	MACAccessToken     = "access-token-v1"
	MACSetting         = "setting-v1"
	MACAudit           = "audit-v1"
)

// Sum returns the HMAC-SHA256 of domain and fields, each length-prefixed
// so that no two field lists share an encoding, under the current key.
func (i *Integrity) Sum(domain string, fields ...[]byte) []byte {
	return sum(i.keys[0], domain, fields)
}

// Verify reports whether mac is Sum(domain, fields...) under any key of
// the ring, in constant time.
func (i *Integrity) Verify(mac []byte, domain string, fields ...[]byte) bool {
	if len(mac) != sha256.Size {
		return false
	}
	for _, k := range i.keys {
		if hmac.Equal(mac, sum(k, domain, fields)) {
			return true
		}
	}
	return false
}

func sum(key []byte, domain string, fields [][]byte) []byte {
	m := hmac.New(sha256.New, key)
	writeLP(m, []byte(domain))
	for _, f := range fields {
		writeLP(m, f)
	}
	return m.Sum(nil)
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
