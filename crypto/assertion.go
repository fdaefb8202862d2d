package crypto

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxAssertionLifetime is the longest lifetime (exp - iat) of a collector
// assertion that ParseAssertion accepts, and the one SignAssertion issues.
const MaxAssertionLifetime = 60 * time.Second

// AssertionClockSkew is the leeway ParseAssertion allows on iat and exp for
// clocks that disagree between collector and platform.
const AssertionClockSkew = 5 * time.Second

// MaxAssertionSize bounds the length of an assertion ParseAssertion reads,
// so an unauthenticated caller cannot make the platform parse megabytes.
const MaxAssertionSize = 4096

// maxJTILength bounds the jti the platform will store for replay checks.
const maxJTILength = 128

// assertionAlg is the only JWS algorithm of an assertion.
const assertionAlg = "EdDSA"

// Errors returned by ParseAssertion. Each failure matches exactly one of
// ErrAssertionMalformed, ErrAssertionSignature, ErrAssertionExpired,
// ErrAssertionAudience and ErrAssertionLifetime; ErrAssertionAlgorithm and
// ErrAssertionClaims refine the first two for callers that want detail.
var (
	// ErrAssertionMalformed reports an assertion that is not a parseable JWT
	// or lacks a required claim.
	ErrAssertionMalformed = errors.New("assertion malformed")
	// ErrAssertionSignature reports a signature that does not verify with
	// the collector's key, or an algorithm other than EdDSA.
	ErrAssertionSignature = errors.New("assertion signature invalid")
	// ErrAssertionExpired reports an assertion past its exp, or not yet
	// valid (iat or nbf in the future), beyond AssertionClockSkew.
	ErrAssertionExpired = errors.New("assertion expired or not yet valid")
	// ErrAssertionAudience reports an aud that does not name this platform.
	ErrAssertionAudience = errors.New("assertion audience mismatch")
	// ErrAssertionLifetime reports an exp - iat outside
	// (0, MaxAssertionLifetime].
	ErrAssertionLifetime = errors.New("assertion lifetime out of bounds")

	// ErrAssertionAlgorithm reports an alg other than EdDSA ("none"
	// included). It also matches ErrAssertionSignature.
	ErrAssertionAlgorithm = fmt.Errorf("%w: algorithm not allowed", ErrAssertionSignature)
	// ErrAssertionClaims reports a missing iss, sub, jti, iat or exp, or
	// iss != sub. It also matches ErrAssertionMalformed.
	ErrAssertionClaims = fmt.Errorf("%w: invalid claims", ErrAssertionMalformed)
)

// Assertion is a verified collector assertion.
type Assertion struct {
	// CollectorID is the collector that signed it (iss and sub).
	CollectorID string
	// Audience is the audience it was checked against (the platform URL).
	Audience string
	// JTI is its unique ID; the platform refuses one it has seen before.
	JTI string
	// IssuedAt and ExpiresAt are its iat and exp claims.
	IssuedAt, ExpiresAt time.Time
}

// SignAssertion returns an EdDSA JWT signed by the collector's identity key
// with iss = sub = collectorID, aud = audience, iat = now, exp = now +
// MaxAssertionLifetime and a random 128-bit jti.
func SignAssertion(key ed25519.PrivateKey, collectorID, audience string, now time.Time) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("sign assertion: %w: ed25519 private key is %d bytes", ErrInvalidKey, len(key))
	}
	if collectorID == "" || audience == "" {
		return "", errors.New("sign assertion: collector ID and audience must not be empty")
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	iat := now.Truncate(time.Second)
	claims := jwt.RegisteredClaims{
		Issuer:    collectorID,
		Subject:   collectorID,
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(iat.Add(MaxAssertionLifetime)),
		ID:        base64.RawURLEncoding.EncodeToString(id[:]),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	return tok, nil
}

// ParseAssertion verifies a collector assertion and returns its claims.
//
// Checks, in order: size and JWT syntax, alg == EdDSA, the claims iss, sub,
// jti, iat and exp present with iss == sub, the signature with the key
// keyFor returns for iss, aud contains audience, 0 < exp - iat <=
// MaxAssertionLifetime, and now within [iat, exp] give or take
// AssertionClockSkew. An error from keyFor (unknown collector, store down)
// is returned wrapped, unchanged for errors.Is.
//
// Replay (a jti seen before) is not checked here: the caller must record
// the jti until ExpiresAt + AssertionClockSkew and refuse a repeat.
func ParseAssertion(token string, audience string, now time.Time, keyFor func(collectorID string) (ed25519.PublicKey, error)) (*Assertion, error) {
	if audience == "" || keyFor == nil {
		return nil, errors.New("parse assertion: audience and key look-up are required")
	}
	if len(token) > MaxAssertionSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrAssertionMalformed, len(token), MaxAssertionSize)
	}
	claims, err := verifyAssertionSignature(token, keyFor)
	if err != nil {
		return nil, err
	}
	if err := checkAssertionTimes(claims, audience, now); err != nil {
		return nil, err
	}
	return &Assertion{
		CollectorID: claims.Issuer,
		Audience:    audience,
		JTI:         claims.ID,
		IssuedAt:    claims.IssuedAt.Time,
		ExpiresAt:   claims.ExpiresAt.Time,
	}, nil
}

// verifyAssertionSignature parses token and verifies its signature. The
// library's claim validation is off here: checkAssertionTimes runs it for
// the time claims alone, so that each failure maps to exactly one sentinel
// rather than to a joined error.
func verifyAssertionSignature(token string, keyFor func(string) (ed25519.PublicKey, error)) (*jwt.RegisteredClaims, error) {
	var keyErr error
	claims := &jwt.RegisteredClaims{}
	keyfunc := func(*jwt.Token) (any, error) {
		pub, err := assertionKey(claims, keyFor)
		keyErr = err
		return pub, err
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{assertionAlg}),
		jwt.WithStrictDecoding(),
		jwt.WithoutClaimsValidation(),
	)
	tok, err := parser.ParseWithClaims(token, claims, keyfunc)
	switch {
	case err == nil:
		return claims, nil
	case keyErr != nil:
		return nil, keyErr
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, fmt.Errorf("%w: %v", ErrAssertionMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && tok != nil && tok.Method != nil && tok.Method.Alg() == assertionAlg:
		return nil, fmt.Errorf("%w: %v", ErrAssertionSignature, err)
	default:
		// A listed but refused method ("none", HS256...) or one the library
		// does not know: either way the algorithm is the problem.
		return nil, fmt.Errorf("%w: %v", ErrAssertionAlgorithm, err)
	}
}

// assertionKey checks the claims the look-up needs and looks the
// collector's key up. It runs after the algorithm check and before the
// signature check, on claims not yet verified: it only selects a key.
func assertionKey(claims *jwt.RegisteredClaims, keyFor func(string) (ed25519.PublicKey, error)) (ed25519.PublicKey, error) {
	if err := checkAssertionClaims(claims); err != nil {
		return nil, err
	}
	pub, err := keyFor(claims.Issuer)
	if err != nil {
		return nil, fmt.Errorf("assertion key for collector %q: %w", claims.Issuer, err)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("assertion key for collector %q: %w: ed25519 public key is %d bytes", claims.Issuer, ErrInvalidKey, len(pub))
	}
	return pub, nil
}

// checkAssertionClaims checks the claims that must be present, before the
// key look-up, so an assertion without a usable iss never reaches the store.
func checkAssertionClaims(c *jwt.RegisteredClaims) error {
	switch {
	case c.Issuer == "" || c.Subject == "":
		return fmt.Errorf("%w: iss and sub required", ErrAssertionClaims)
	case c.Issuer != c.Subject:
		return fmt.Errorf("%w: iss %q != sub %q", ErrAssertionClaims, c.Issuer, c.Subject)
	case c.ID == "" || len(c.ID) > maxJTILength:
		return fmt.Errorf("%w: jti required, at most %d characters", ErrAssertionClaims, maxJTILength)
	case c.IssuedAt == nil || c.ExpiresAt == nil:
		return fmt.Errorf("%w: iat and exp required", ErrAssertionClaims)
	}
	return nil
}

// checkAssertionTimes checks audience, lifetime and validity window, the
// last with the library's validator.
func checkAssertionTimes(c *jwt.RegisteredClaims, audience string, now time.Time) error {
	// By hand: a library validator with only WithAudience would also check
	// exp against the wall clock rather than now.
	if !slices.Contains(c.Audience, audience) {
		return fmt.Errorf("%w: want %q, got %q", ErrAssertionAudience, audience, []string(c.Audience))
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life <= 0 || life > MaxAssertionLifetime {
		return fmt.Errorf("%w: exp - iat = %v, limit %v", ErrAssertionLifetime, life, MaxAssertionLifetime)
	}
	window := jwt.NewValidator(
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(AssertionClockSkew),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	if err := window.Validate(c); err != nil {
		return fmt.Errorf("%w: %v", ErrAssertionExpired, err)
	}
	return nil
}
