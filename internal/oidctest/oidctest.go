// Package oidctest runs a real OpenID provider for tests: zitadel's op
// package (a certified OpenID Connect provider implementation) serving
// HTTPS on 127.0.0.1 with a certificate of its own test CA, one
// confidential web client (client_secret_basic, authorization code, PKCE
// S256), users with a groups claim, and the knobs the attack tests need:
// who signs in next, the provider's clock, a signing key the JWKS does not
// publish, and a hook that changes an ID token's claims before the
// provider signs it again.
//
// The login page is not a form: it signs in the user chosen with LoginAs
// at once, so a test's HTTP client with a cookie jar goes through the
// whole flow by following redirects.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is an account at the provider.
type User struct {
	Subject           string
	PreferredUsername string
	Email             string
	EmailVerified     bool
	Name              string
	Groups            []string
	// Claims are more claims of its ID token (a tenant, a department).
	Claims map[string]any
}

// Config sets up a provider. RedirectURI is required.
type Config struct {
	// ClientID and ClientSecret are the one client's credentials (default
	// "collector" and a random secret).
	ClientID, ClientSecret string
	// RedirectURI is the client's registered redirect URI (exact match).
	RedirectURI string
	// IDTokenLifetime is how long ID tokens live (default 5 min).
	IDTokenLifetime time.Duration
	// Log receives the provider's own log (default: discarded).
	Log *slog.Logger
}

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is its issuer URL (https://127.0.0.1:PORT).
	Issuer string
	// ClientID and ClientSecret are the client's credentials.
	ClientID, ClientSecret string
	// CAPEM is the test CA that signed its TLS certificate: what a client
	// must trust to reach it.
	CAPEM []byte

	st    *storage
	op    *op.Provider
	srv   *http.Server
	certs *x509.CertPool

	mu          sync.Mutex
	next        string // subject of the user the login page signs in
	tamper      func(claims map[string]any)
	unpublished *rsa.PrivateKey // signs instead of the published key, if set
	offset      time.Duration
	exchanges   int // successful code exchanges
	refusals    int // refused token requests
}

// Start starts a provider for the test and stops it when the test ends.
func Start(t testing.TB, cfg Config) *Provider {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// New starts a provider on 127.0.0.1; Close stops it.
func New(cfg Config) (*Provider, error) {
	if cfg.RedirectURI == "" {
		return nil, errors.New("oidctest: RedirectURI is required")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "collector"
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = randomHex(24)
	}
	if cfg.IDTokenLifetime == 0 {
		cfg.IDTokenLifetime = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tc, caPEM, err := newTLS()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Provider{Issuer: "https://" + ln.Addr().String(), ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, CAPEM: caPEM,
		certs: x509.NewCertPool()}
	p.certs.AppendCertsFromPEM(caPEM)
	if p.st, err = newStorage(p, cfg); err != nil {
		ln.Close()
		return nil, err
	}
	var key [32]byte
	rand.Read(key[:])
	p.op, err = op.NewProvider(&op.Config{CryptoKey: key, CodeMethodS256: true, SupportedUILocales: []language.Tag{language.English}},
		p.st, op.StaticIssuer(p.Issuer))
	if err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/login", op.NewIssuerInterceptor(p.op.IssuerFromRequest).HandlerFunc(p.login))
	mux.Handle("/", p.op)
	p.srv = &http.Server{Handler: p.rewriteTokens(mux), TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug)}
	go p.srv.ServeTLS(ln, "", "")
	return p, nil
}

// Close stops the provider.
func (p *Provider) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
}

// Client returns an HTTP client that trusts the provider's CA and, if
// given, more CAs (a browser's view: the platform's CA too).
func (p *Provider) Client(morePEM ...[]byte) *http.Client {
	pool := p.certs.Clone()
	for _, pem := range morePEM {
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// AddUser adds or replaces a user (by subject): a later sign-in carries
// its new groups and claims.
func (p *Provider) AddUser(u User) { p.st.putUser(u) }

// LoginAs makes the login page sign in the user with that subject.
func (p *Provider) LoginAs(subject string) {
	p.mu.Lock()
	p.next = subject
	p.mu.Unlock()
}

// Tamper changes the claims of every ID token the token endpoint returns
// from now on (nil: none), the provider signing it again with its key: a
// provider that issues a token for another audience, without the nonce,
// for another issuer, or expired.
func (p *Provider) Tamper(f func(claims map[string]any)) {
	p.mu.Lock()
	p.tamper = f
	p.mu.Unlock()
}

// SignWithUnpublishedKey makes the provider sign ID tokens with a key its
// JWKS does not publish (under the published key's ID): a forged token.
func (p *Provider) SignWithUnpublishedKey(on bool) error {
	var k *rsa.PrivateKey
	if on {
		var err error
		if k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.unpublished = k
	p.mu.Unlock()
	return nil
}

// AdvanceClock moves the provider's clock by d (negative: back): the
// times in the ID tokens it issues (iat, exp, auth_time) move with it.
func (p *Provider) AdvanceClock(d time.Duration) {
	p.mu.Lock()
	p.offset += d
	p.mu.Unlock()
}

// Now is the provider's clock.
func (p *Provider) Now() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Add(p.offset)
}

// Exchanges reports how many codes the token endpoint exchanged for
// tokens, and how many token requests it refused (a code used twice, a
// wrong PKCE verifier, a wrong client secret).
func (p *Provider) Exchanges() (ok, refused int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exchanges, p.refusals
}

// LastAuthRequest returns what the last authorization request asked for:
// its PKCE method and whether it carried a nonce and a state.
func (p *Provider) LastAuthRequest() (pkceMethod string, nonce, state bool) {
	return p.st.lastAuthRequest()
}

// login is the provider's login page: it signs in the user chosen with
// LoginAs and sends the browser back into the authorization flow.
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	sub := p.next
	p.mu.Unlock()
	id := r.URL.Query().Get("authRequestID")
	if sub == "" {
		http.Error(w, "oidctest: no user chosen (LoginAs)", http.StatusForbidden)
		return
	}
	if err := p.st.completeLogin(id, sub, p.Now()); err != nil {
		http.Error(w, "oidctest: "+err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(r.Context(), id), http.StatusFound)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tokenPath is the op package's token endpoint.
var tokenPath = "/" + strings.TrimPrefix(op.DefaultEndpoints.Token.Relative(), "/")
