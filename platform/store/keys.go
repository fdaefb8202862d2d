package store

import (
	"bytes"
	"errors"
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

// VerifyPreviousKey reports whether mac, read with p, is p's MAC as the
// previous key of collectorID under a key of in's ring.
func VerifyPreviousKey(in *Integrity, collectorID string, p PreviousKey, mac []byte) bool {
	return in.Verify(mac, MACPreviousKey, []byte(collectorID), p.IdentityKey, p.Successor, Int64(p.Until.UnixNano()))
}

// KeyAccepted reports whether an access token bound to fp is good for the
// collector whose identity key is current: fp is that key's, or its
// previous key's while that is live. previous looks the previous key up
// only when it is needed; one that is not there (ErrNotFound) or whose MAC
// fails (ErrIntegrity) is not accepted.
func KeyAccepted(fp string, current []byte, now time.Time, previous func() (PreviousKey, error)) (bool, error) {
	if fp == "" || len(current) == 0 {
		return false, nil
	}
	if crypto.Fingerprint(current) == fp {
		return true, nil
	}
	p, err := previous()
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrIntegrity) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return p.Accepts(fp, current, now), nil
}
