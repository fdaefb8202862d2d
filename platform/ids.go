package platform

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns prefix + "_" + 128 random bits in lowercase base32
// (26 characters), the form api.ValidCollectorID checks.
func newID(prefix string) string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
