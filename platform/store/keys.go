package store

import (
	"bytes"
	"time"

	"github.com/collectorhq/collector/crypto"
)

// MACPreviousKey is the domain of a rotated-out identity key's MAC.
const MACPreviousKey = "collector-previous-key-v1"

// KeyRotation replaces an enrolled collector's public keys.
type KeyRotation struct {
	CollectorID string
	// OldIdentityKey is the identity key being replaced: the rotation
	// happens only if it is still the collector's (else ErrStaleKey).
	OldIdentityKey []byte
	IdentityKey    []byte
	HPKEKey        []byte
	// PreviousUntil is when OldIdentityKey stops being accepted (its
	// assertions and the access tokens issued for it).
	PreviousUntil time.Time
}

// PreviousKey is the identity key a collector's last rotation replaced.
// It stands only while the key that replaced it (Successor) is still the
// collector's: a re-enrollment or a second rotation ends it.
type PreviousKey struct {
	IdentityKey []byte
	Successor   []byte
	Until       time.Time
}

// LiveFor reports whether p is still accepted at now for a collector
// whose identity key is current.
func (p PreviousKey) LiveFor(current []byte, now time.Time) bool {
	return len(p.IdentityKey) > 0 && len(current) > 0 && bytes.Equal(p.Successor, current) && now.Before(p.Until)
}

// Accepts reports whether an access token bound to fingerprint fp is good
// for a collector whose identity key is current: fp is that key's, or p's
// while p is live.
func (p PreviousKey) Accepts(fp string, current []byte, now time.Time) bool {
	if fp == "" || len(current) == 0 {
		return false
	}
	return crypto.Fingerprint(current) == fp || p.LiveFor(current, now) && crypto.Fingerprint(p.IdentityKey) == fp
}

// PreviousKeyMAC is the MAC fields of a previous key row.
func PreviousKeyMAC(in *Integrity, collectorID string, p PreviousKey) []byte {
	return in.Sum(MACPreviousKey, []byte(collectorID), p.IdentityKey, p.Successor, Int64(p.Until.UnixNano()))
}
