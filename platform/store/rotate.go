package store

import (
	"context"
	"encoding/base64"
	"fmt"
)

// A data key rotation (`platform keys rotate`, docs/auth.md) moves every
// value the platform's data key protects to the ring's current key:
// the values sealed with it (the platform opens and re-seals them: the
// store never holds the data key) and the integrity MACs of the
// trust-bearing rows (the store re-computes them: it holds the integrity
// keys derived from the ring). Each step is a short compare-and-swap
// transaction, so replicas keep serving while it runs, and a second run
// finds nothing left to do.

// MACKind names the rows of one table that carry an integrity MAC.
type MACKind string

// The kinds of MAC'd rows.
const (
	MACRowsSettings          MACKind = "settings"
	MACRowsCollectorKeys     MACKind = "collector keys"
	MACRowsCollectorPools    MACKind = "collector pools"
	MACRowsCollectorPrevious MACKind = "collector previous keys"
	MACRowsEnrollmentTokens  MACKind = "enrollment tokens"
	MACRowsAccessTokens      MACKind = "access tokens"
	MACRowsAudit             MACKind = "audit entries"
	MACRowsUsers             MACKind = "users"
	MACRowsSessions          MACKind = "sessions"
	MACRowsAPITokens         MACKind = "api tokens"
	MACRowsPasskeys          MACKind = "passkeys"
	MACRowsPasskeyCeremonies MACKind = "passkey ceremonies"
)

// MACKinds lists every kind of MAC'd row, in the order rotation walks them.
var MACKinds = []MACKind{MACRowsSettings, MACRowsCollectorKeys, MACRowsCollectorPools, MACRowsCollectorPrevious, MACRowsEnrollmentTokens,
	MACRowsAccessTokens, MACRowsUsers, MACRowsSessions, MACRowsAPITokens, MACRowsPasskeys, MACRowsPasskeyCeremonies,
	MACRowsAudit}

// SealedKind names one kind of value sealed with the data key.
type SealedKind string

// The kinds of sealed values.
const (
	SealedIntegrationConfigs SealedKind = "integration configs"
	SealedTOTPSecrets        SealedKind = "totp secrets"
	SealedTOTPPending        SealedKind = "pending totp secrets"
	SealedSSOSecret          SealedKind = "sso client secret"
	SealedAccessKey          SealedKind = "access key"
)

// SealedKinds lists every kind of sealed value.
var SealedKinds = []SealedKind{SealedIntegrationConfigs, SealedTOTPSecrets, SealedTOTPPending, SealedSSOSecret, SealedAccessKey}

// SettingAccessKey is the setting that keeps the account service's own
// key (device cookies, recovery code hashes, sign-in flows), sealed with
// the data key (base64). It is kept apart from the data key so that a
// rotation re-seals it and what it keys stays valid.
const SettingAccessKey = "access_key"

// Sealed is one sealed value: ID names its row (an integration's or a
// user's ID, a setting's key).
type Sealed struct {
	ID    string
	Value []byte
}

// MACCount counts the rows of one kind by the integrity key their MAC
// verifies under.
type MACCount struct {
	// ByKey[i] counts the rows under the ring's key i (0: the current key).
	ByKey []int
	// Unverified counts rows whose MAC verifies under no key of the ring:
	// written outside the platform, or under a key removed from the ring.
	// Rotation leaves them as they are (they stay refused).
	Unverified int
	// Rekeyed counts the rows RekeyMACs moved to the current key.
	Rekeyed int
}

// Rekeyer is what a data key rotation needs of a store.
type Rekeyer interface {
	// CountMACKeys counts the rows of kind by the key their MAC is under.
	CountMACKeys(ctx context.Context, kind MACKind) (MACCount, error)
	// RekeyMACs re-computes under the current integrity key the MAC of
	// every row of kind that verifies under an older key, batch rows per
	// transaction, and returns the counts as they were before.
	RekeyMACs(ctx context.Context, kind MACKind, batch int) (MACCount, error)
	// SealedValues returns up to limit values of kind whose ID sorts
	// after after, in ID order.
	SealedValues(ctx context.Context, kind SealedKind, after string, limit int) ([]Sealed, error)
	// Reseal replaces the value of kind in row id by value if it still is
	// old, and reports whether it did (false: it changed meanwhile, or
	// the row is gone). A setting's MAC is re-computed with it.
	Reseal(ctx context.Context, kind SealedKind, id string, old, value []byte) (bool, error)
}

// SealedSetting is a sealed value kept inside a setting: Get reads it from
// the setting's value, Set returns the value with it replaced.
type SealedSetting struct {
	Key string
	Get func(value string) ([]byte, error)
	Set func(value string, sealed []byte) (string, error)
}

// AccessKeySetting is the account service's key, sealed, in base64.
var AccessKeySetting = SealedSetting{
	Key: SettingAccessKey,
	Get: func(v string) ([]byte, error) { return base64.StdEncoding.DecodeString(v) },
	Set: func(_ string, sealed []byte) (string, error) { return base64.StdEncoding.EncodeToString(sealed), nil },
}

// WalkMACs is the re-key walk of every backend: it reads rows in key
// order, batch at a time (fetch: up to limit rows after cursor, starting
// at start; key: a row's cursor), finds the ring key each row's MAC is
// under (under: its index among keys, -1 for none), counts them and, if
// rekey, hands each batch's rows under an older key to swap, which
// replaces their MACs in one short transaction and says how many it
// replaced (a row changed meanwhile keeps what its writer gave it).
func WalkMACs[R any](ctx context.Context, start []any, batch, keys int, rekey bool,
	fetch func(ctx context.Context, cursor []any, limit int) ([]R, error),
	key func(R) []any, under func(R) int,
	swap func(ctx context.Context, rows []R) (int, error)) (MACCount, error) {
	c := MACCount{ByKey: make([]int, keys)}
	if batch <= 0 {
		return c, fmt.Errorf("batch %d, want at least 1", batch)
	}
	cursor := start
	for {
		rows, err := fetch(ctx, cursor, batch)
		if err != nil {
			return c, err
		}
		var stale []R
		for _, r := range rows {
			i := under(r)
			if i < 0 {
				c.Unverified++
				continue
			}
			c.ByKey[i]++
			if i > 0 {
				stale = append(stale, r)
			}
		}
		if rekey && len(stale) > 0 {
			n, err := swap(ctx, stale)
			if err != nil {
				return c, err
			}
			c.Rekeyed += n
		}
		if len(rows) < batch {
			return c, nil
		}
		cursor = key(rows[len(rows)-1])
	}
}
