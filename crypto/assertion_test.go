package crypto_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collectorhq/collector/crypto"
)

const (
	testCollector = "col_0123456789"
	testAudience  = "https://platform.example.test"
)

var assertionSentinels = []error{
	crypto.ErrAssertionMalformed,
	crypto.ErrAssertionSignature,
	crypto.ErrAssertionExpired,
	crypto.ErrAssertionAudience,
	crypto.ErrAssertionLifetime,
	crypto.ErrAssertionAlgorithm,
	crypto.ErrAssertionClaims,
}

// parentOf gives the sentinel a refined assertion error also matches.
var parentOf = map[error]error{
	crypto.ErrAssertionAlgorithm: crypto.ErrAssertionSignature,
	crypto.ErrAssertionClaims:    crypto.ErrAssertionMalformed,
}

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type assertionFixture struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newAssertionFixture(t testing.TB) *assertionFixture {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &assertionFixture{priv: priv, pub: pub}
}

func (f *assertionFixture) keyFor(id string) (ed25519.PublicKey, error) {
	if id != testCollector {
		return nil, fmt.Errorf("collector %q: %w", id, errUnknownCollector)
	}
	return f.pub, nil
}

var errUnknownCollector = errors.New("unknown collector")

// sign signs claims as the collector would, with full control of the
// claims, to build assertions SignAssertion would never issue.
func (f *assertionFixture) sign(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(f.priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func validClaims(now time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{
		Issuer:    testCollector,
		Subject:   testCollector,
		Audience:  jwt.ClaimStrings{testAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		ID:        "AAAAAAAAAAAAAAAAAAAAAA",
	}
}

func TestAssertionRoundTrip(t *testing.T) {
	f := newAssertionFixture(t)
	tok, err := crypto.SignAssertion(f.priv, testCollector, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{0, 30 * time.Second, 64 * time.Second, -4 * time.Second} {
		a, err := crypto.ParseAssertion(tok, testAudience, testNow.Add(at), f.keyFor)
		if err != nil {
			t.Fatalf("at now%+v: %v", at, err)
		}
		if a.CollectorID != testCollector || a.Audience != testAudience {
			t.Errorf("got collector %q audience %q", a.CollectorID, a.Audience)
		}
		if !a.IssuedAt.Equal(testNow) || a.ExpiresAt.Sub(a.IssuedAt) != crypto.MaxAssertionLifetime {
			t.Errorf("got iat %v exp %v", a.IssuedAt, a.ExpiresAt)
		}
		jti, err := base64.RawURLEncoding.DecodeString(a.JTI)
		if err != nil || len(jti) != 16 {
			t.Errorf("jti %q is not 128 bits of base64url: %v", a.JTI, err)
		}
	}
	tok2, err := crypto.SignAssertion(f.priv, testCollector, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := crypto.ParseAssertion(tok, testAudience, testNow, f.keyFor)
	a2, _ := crypto.ParseAssertion(tok2, testAudience, testNow, f.keyFor)
	if a1.JTI == a2.JTI {
		t.Error("two assertions share a jti")
	}
}

func TestParseAssertionRejects(t *testing.T) {
	f := newAssertionFixture(t)
	other := newAssertionFixture(t)
	good, err := crypto.SignAssertion(f.priv, testCollector, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")

	claimsWith := func(edit func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := validClaims(testNow)
		edit(&c)
		return c
	}
	hs256, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims(testNow)).SignedString([]byte("secret"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims(testNow)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// A header naming an algorithm the library does not know, EdDSA signature kept.
	unknownAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XX","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]
	// The EdDSA signature over the header and claims, with the header switched to "none".
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error
	}{
		{"empty", "", testNow, crypto.ErrAssertionMalformed},
		{"garbage", "not a jwt", testNow, crypto.ErrAssertionMalformed},
		{"two segments", parts[0] + "." + parts[1], testNow, crypto.ErrAssertionMalformed},
		{"bad base64", parts[0] + ".!!!." + parts[2], testNow, crypto.ErrAssertionMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], testNow, crypto.ErrAssertionMalformed},
		{"too long", good + strings.Repeat("A", crypto.MaxAssertionSize), testNow, crypto.ErrAssertionMalformed},
		{"iss != sub", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.Subject = "col_other" })), testNow, crypto.ErrAssertionClaims},
		{"no iss", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.Issuer, c.Subject = "", "" })), testNow, crypto.ErrAssertionClaims},
		{"no jti", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.ID = "" })), testNow, crypto.ErrAssertionClaims},
		{"no iat", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.IssuedAt = nil })), testNow, crypto.ErrAssertionClaims},
		{"no exp", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })), testNow, crypto.ErrAssertionClaims},
		{"alg HS256", hs256, testNow, crypto.ErrAssertionAlgorithm},
		{"alg none", none, testNow, crypto.ErrAssertionAlgorithm},
		{"alg none, EdDSA signature", noneHeader, testNow, crypto.ErrAssertionAlgorithm},
		{"alg unknown", unknownAlg, testNow, crypto.ErrAssertionAlgorithm},
		{"wrong key", other.sign(t, validClaims(testNow)), testNow, crypto.ErrAssertionSignature},
		{"tampered claims", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+testCollector+`","sub":"`+testCollector+`","aud":"`+testAudience+`","iat":1,"exp":2,"jti":"x"}`)) + "." + parts[2], testNow, crypto.ErrAssertionSignature},
		{"wrong audience", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"https://evil.example"} })), testNow, crypto.ErrAssertionAudience},
		{"no audience", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.Audience = nil })), testNow, crypto.ErrAssertionAudience},
		{"lifetime 61s", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(testNow.Add(61 * time.Second)) })), testNow, crypto.ErrAssertionLifetime},
		{"lifetime 1h", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(testNow.Add(time.Hour)) })), testNow, crypto.ErrAssertionLifetime},
		{"exp before iat", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-time.Second)) })), testNow, crypto.ErrAssertionLifetime},
		{"expired", good, testNow.Add(66 * time.Second), crypto.ErrAssertionExpired},
		{"not yet valid", good, testNow.Add(-6 * time.Second), crypto.ErrAssertionExpired},
		{"nbf in future", f.sign(t, claimsWith(func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(testNow.Add(30 * time.Second)) })), testNow, crypto.ErrAssertionExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := crypto.ParseAssertion(tt.token, testAudience, tt.now, f.keyFor)
			if a != nil {
				t.Errorf("got assertion %+v with error %v", a, err)
			}
			wants := []error{tt.want}
			if p, ok := parentOf[tt.want]; ok {
				wants = append(wants, p)
			}
			assertOnlyAll(t, err, wants, assertionSentinels)
		})
	}
}

func TestParseAssertionRefinedErrors(t *testing.T) {
	// The refinements also match their parent sentinel.
	if !errors.Is(crypto.ErrAssertionAlgorithm, crypto.ErrAssertionSignature) {
		t.Error("ErrAssertionAlgorithm does not match ErrAssertionSignature")
	}
	if !errors.Is(crypto.ErrAssertionClaims, crypto.ErrAssertionMalformed) {
		t.Error("ErrAssertionClaims does not match ErrAssertionMalformed")
	}
	// A plain bad signature is not an algorithm error.
	f, other := newAssertionFixture(t), newAssertionFixture(t)
	_, err := crypto.ParseAssertion(other.sign(t, validClaims(testNow)), testAudience, testNow, f.keyFor)
	if errors.Is(err, crypto.ErrAssertionAlgorithm) {
		t.Errorf("wrong key reported as algorithm error: %v", err)
	}
}

func TestParseAssertionKeyForError(t *testing.T) {
	f := newAssertionFixture(t)
	tok, err := crypto.SignAssertion(f.priv, "col_unknown", testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, err = crypto.ParseAssertion(tok, testAudience, testNow, f.keyFor)
	if !errors.Is(err, errUnknownCollector) {
		t.Fatalf("got %v, want the keyFor error wrapped", err)
	}
	for _, s := range assertionSentinels {
		if errors.Is(err, s) {
			t.Errorf("keyFor error also matches %v", s)
		}
	}
	// A key of the wrong size from the store is an error, not a panic.
	_, err = crypto.ParseAssertion(tok, testAudience, testNow, func(string) (ed25519.PublicKey, error) { return ed25519.PublicKey{1, 2}, nil })
	if !errors.Is(err, crypto.ErrInvalidKey) {
		t.Errorf("short key: got %v, want ErrInvalidKey", err)
	}
}

func TestParseAssertionAudienceList(t *testing.T) {
	f := newAssertionFixture(t)
	c := validClaims(testNow)
	c.Audience = jwt.ClaimStrings{"https://other.example", testAudience}
	if _, err := crypto.ParseAssertion(f.sign(t, c), testAudience, testNow, f.keyFor); err != nil {
		t.Errorf("audience in a list refused: %v", err)
	}
}

func TestSignAssertionBadInput(t *testing.T) {
	f := newAssertionFixture(t)
	if _, err := crypto.SignAssertion(f.priv[:10], testCollector, testAudience, testNow); err == nil {
		t.Error("short key accepted")
	}
	if _, err := crypto.SignAssertion(f.priv, "", testAudience, testNow); err == nil {
		t.Error("empty collector ID accepted")
	}
	if _, err := crypto.SignAssertion(f.priv, testCollector, "", testNow); err == nil {
		t.Error("empty audience accepted")
	}
}
