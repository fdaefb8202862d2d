package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// TokenBytes is the number of random bytes in a token from NewToken.
const TokenBytes = 32

// NewToken returns prefix followed by 256 random bits in unpadded base64url
// (43 characters), e.g. "ct_" + ... for an enrollment token. The prefix
// only tells a human, or a secret scanner, what the token is for.
func NewToken(prefix string) (string, error) {
	var b [TokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashToken returns the lowercase hex SHA-256 of token, prefix included:
// what the platform stores and looks a presented token up by. A plain hash
// suffices because the token has 256 bits of entropy; a look-up by hash
// also means no secret is compared byte by byte.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
