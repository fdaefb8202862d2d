package api

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/collectorhq/collector/crypto"
)

// CollectorClient is the collector's side of the API: enrollment, the
// assertion-for-access-token exchange, and calls made with the access token,
// which it renews before it expires.
type CollectorClient struct {
	t        transport
	id       string
	key      ed25519.PrivateKey
	audience string
	clock    *PlatformClock
	// keys, if set, gives the identity keys to sign with, in order: a
	// rotation replaces the key files under a running daemon or runner.
	keys func() []ed25519.PrivateKey

	mu      sync.Mutex
	access  string
	expires time.Time
}

// NewCollectorClient returns a client for collector id, signing assertions
// with key for audience (the platform's public URL, as enrollment returned).
// key and audience may be nil and "" for Enroll alone. Every answer
// measures the platform's clock (Clock), in whose time the client signs.
func NewCollectorClient(baseURL, id string, key ed25519.PrivateKey, audience string, hc *http.Client) *CollectorClient {
	clock := NewPlatformClock()
	return &CollectorClient{t: newTransport(baseURL, watchClock(hc, clock)), id: id, key: key, audience: audience, clock: clock}
}

// SetKeySource makes the client sign each assertion with the keys keys
// returns then, instead of the key it was made with: with the first, and
// with each next one while the platform refuses the assertion (the keys
// of a rotation the platform may or may not have taken yet).
func (c *CollectorClient) SetKeySource(keys func() []ed25519.PrivateKey) {
	c.mu.Lock()
	c.keys = keys
	c.mu.Unlock()
}

func (c *CollectorClient) signingKeys() []ed25519.PrivateKey {
	c.mu.Lock()
	keys := c.keys
	c.mu.Unlock()
	if keys != nil {
		if ks := keys(); len(ks) > 0 {
			return ks
		}
	}
	return []ed25519.PrivateKey{c.key}
}

// Clock is the platform's clock as the client measures it.
func (c *CollectorClient) Clock() *PlatformClock { return c.clock }

func (c *CollectorClient) now() time.Time { return c.clock.Now() }

// Enroll sends the collector's public keys with its one-time token.
func (c *CollectorClient) Enroll(ctx context.Context, req EnrollRequest) (*EnrollResponse, error) {
	var out EnrollResponse
	if err := c.t.do(ctx, http.MethodPost, PathEnroll, "", req, &out); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return &out, nil
}

// SetAudience sets the audience after enrollment returned it.
func (c *CollectorClient) SetAudience(aud string) {
	c.mu.Lock()
	c.audience = aud
	c.mu.Unlock()
}

// ExchangeAssertion signs a fresh assertion and trades it for an access
// token. An assertion refused while the answer showed the platform's clock
// elsewhere than believed (the first exchange of a host whose clock is
// off) is signed again in the platform's time, once. One refused for good
// is signed with the key source's next key, if it has one.
func (c *CollectorClient) ExchangeAssertion(ctx context.Context) (*TokenResponse, error) {
	var out *TokenResponse
	var err error
	for _, key := range c.signingKeys() {
		out, err = c.exchangeWith(ctx, key)
		if StatusOf(err) != http.StatusUnauthorized {
			break
		}
	}
	return out, err
}

func (c *CollectorClient) exchangeWith(ctx context.Context, key ed25519.PrivateKey) (*TokenResponse, error) {
	c.mu.Lock()
	aud := c.audience
	c.mu.Unlock()
	for try := 0; ; try++ {
		before, _ := c.clock.Offset()
		assertion, err := crypto.SignAssertion(key, c.id, aud, c.now())
		if err != nil {
			return nil, err
		}
		out, err := c.Exchange(ctx, assertion)
		after, _ := c.clock.Offset()
		if err == nil || try > 0 || StatusOf(err) != http.StatusUnauthorized || after == before {
			return out, err
		}
	}
}

// Exchange trades an already signed assertion for an access token.
func (c *CollectorClient) Exchange(ctx context.Context, assertion string) (*TokenResponse, error) {
	var out TokenResponse
	if err := c.t.do(ctx, http.MethodPost, PathToken, "", TokenRequest{Assertion: assertion}, &out); err != nil {
		return nil, fmt.Errorf("exchange assertion: %w", err)
	}
	c.mu.Lock()
	c.access, c.expires = out.AccessToken, c.now().Add(time.Duration(out.ExpiresIn)*time.Second)
	c.mu.Unlock()
	return &out, nil
}

// renewBefore is how long before expiry the client fetches a new token.
const renewBefore = time.Minute

// AccessToken returns a live access token, exchanging an assertion if needed.
func (c *CollectorClient) AccessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	tok, exp := c.access, c.expires
	c.mu.Unlock()
	if tok != "" && c.now().Add(renewBefore).Before(exp) {
		return tok, nil
	}
	out, err := c.ExchangeAssertion(ctx)
	if err != nil {
		return "", err
	}
	return out.AccessToken, nil
}

// Heartbeat reports the collector's state.
func (c *CollectorClient) Heartbeat(ctx context.Context, hb Heartbeat) error {
	_, err := c.Beat(ctx, hb)
	return err
}

// Beat sends a heartbeat and returns the platform's answer.
func (c *CollectorClient) Beat(ctx context.Context, hb Heartbeat) (*HeartbeatAnswer, error) {
	var ans HeartbeatAnswer
	if err := c.withAccess(ctx, func(tok string) error {
		return c.t.do(ctx, http.MethodPost, PathHeartbeat, tok, hb, &ans)
	}); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return &ans, nil
}

// Do calls a collector endpoint with the access token: for endpoints added
// later (jobs) and for tests.
func (c *CollectorClient) Do(ctx context.Context, method, path string, in, out any) error {
	return c.withAccess(ctx, func(tok string) error {
		return c.t.do(ctx, method, path, tok, in, out)
	})
}

// withAccess calls fn with a live access token; when the platform answers
// 401 (token revoked, or expired early), it exchanges a fresh assertion and
// tries once more.
func (c *CollectorClient) withAccess(ctx context.Context, fn func(tok string) error) error {
	tok, err := c.AccessToken(ctx)
	if err != nil {
		return err
	}
	err = fn(tok)
	if StatusOf(err) != http.StatusUnauthorized {
		return err
	}
	c.mu.Lock()
	if c.access == tok {
		c.access = ""
	}
	c.mu.Unlock()
	if tok, err = c.AccessToken(ctx); err != nil {
		return err
	}
	return fn(tok)
}
