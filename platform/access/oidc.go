package access

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/collectorhq/collector/crypto"
)

// SSO signs users in with an OpenID provider: the authorization code flow
// with PKCE (S256), a nonce and a state, all three bound to the browser
// by a sealed flow cookie (docs/access.md, "Single sign-on").
type SSO struct {
	svc         *Service
	redirectURL string
	flowKey     []byte

	mu     sync.Mutex
	cached *ssoProvider // the provider of the current settings
}

// ssoProvider is a discovered provider and the HTTP client that reaches
// it (the system's roots plus the settings' CA bundle).
type ssoProvider struct {
	key      string // issuer and CA bundle it was discovered with
	provider *oidc.Provider
	hc       *http.Client
	// style is how the client secret goes to the token endpoint: once,
	// the way the provider says it takes it (oauth2's auto-detection
	// would present a refused code a second time).
	style oauth2.AuthStyle
}

// SSOMethod is a single sign-on session's Method.
const SSOMethod = "sso"

// SSOFlowCookieName is the cookie that binds a flow to the browser that
// started it. It is SameSite=Lax, unlike the session cookie: the callback
// is a top-level navigation from the provider's site, on which a Strict
// cookie is not sent.
const SSOFlowCookieName = "__Host-collector-sso-flow"

// SSOFlowLifetime bounds a sign-in at the provider.
const SSOFlowLifetime = ssoFlowLifetime

// NewSSO returns single sign-on for svc; redirectURL is the platform's
// callback (<public URL>/auth/oidc/callback).
func NewSSO(svc *Service, redirectURL string) *SSO {
	return &SSO{svc: svc, redirectURL: redirectURL, flowKey: derive(svc.deviceKey, "collector sso flow v1")}
}

// RedirectURL is the callback URL to register at the provider.
func (s *SSO) RedirectURL() string { return s.redirectURL }

// ssoFlow is the flow cookie's content, sealed (AES-256-GCM) with a key of
// the platform's: the browser holds it but can neither read nor change it.
type ssoFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"next"`
	Expires  int64  `json:"exp"`
	Settings string `json:"fp"` // fingerprint of the settings it began under
}

var flowAAD = []byte("collector sso flow v1")

func randomString() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Begin starts a sign-in: it returns the provider's authorization URL to
// send the browser to and the flow cookie to set. next is where to go
// once signed in (a local path, checked by the caller).
func (s *SSO) Begin(ctx context.Context, next string) (authURL, cookie string, err error) {
	c, err := s.Settings(ctx)
	if err != nil {
		return "", "", err
	}
	p, err := s.provider(ctx, c)
	if err != nil {
		return "", "", err
	}
	f := ssoFlow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(), Next: next,
		Expires: s.svc.now().Add(ssoFlowLifetime).Unix(), Settings: c.fingerprint()}
	plain, _ := json.Marshal(f)
	sealed, err := crypto.SealAtRest(s.flowKey, plain, flowAAD)
	if err != nil {
		return "", "", err
	}
	oc := s.oauth2Config(c, p, "")
	return oc.AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce)), base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (s *SSO) oauth2Config(c SSOSettings, p *ssoProvider, secret string) *oauth2.Config {
	ep := p.provider.Endpoint()
	ep.AuthStyle = p.style
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: secret, Endpoint: ep, RedirectURL: s.redirectURL,
		Scopes: append([]string{oidc.ScopeOpenID, "email", "profile"}, c.Scopes...)}
}

// openFlow reads a flow cookie; any failure is the same refusal.
func (s *SSO) openFlow(cookie string) (ssoFlow, bool) {
	var f ssoFlow
	if cookie == "" || len(cookie) > 2048 {
		return f, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(cookie)
	if err != nil {
		return f, false
	}
	plain, err := crypto.OpenAtRest(s.flowKey, sealed, flowAAD)
	if err != nil || json.Unmarshal(plain, &f) != nil {
		return f, false
	}
	return f, true
}

// Check discovers the provider of c as a sign-in would: its issuer answers
// over TLS trusted by the system or c's CA bundle, names itself the same
// and, if it lists its PKCE methods, supports S256.
func (s *SSO) Check(ctx context.Context, c SSOSettings) error {
	c.Normalize()
	if err := c.Validate(); err != nil {
		return err
	}
	p, err := discover(ctx, c)
	if err != nil {
		return err
	}
	defer p.hc.CloseIdleConnections()
	var meta struct {
		PKCE []string `json:"code_challenge_methods_supported"`
	}
	if err := p.provider.Claims(&meta); err == nil && len(meta.PKCE) > 0 && !slices.Contains(meta.PKCE, "S256") {
		return fmt.Errorf("%w: sso issuer: the provider does not support PKCE with S256 (it lists %v)", ErrInvalid, meta.PKCE)
	}
	return nil
}

// provider returns the discovered provider of c, discovering it once per
// issuer and CA bundle (its keys are fetched, and fetched again for an
// unknown key ID, by go-oidc).
func (s *SSO) provider(ctx context.Context, c SSOSettings) (*ssoProvider, error) {
	key := c.Issuer + "\x00" + c.CABundle
	s.mu.Lock()
	p := s.cached
	s.mu.Unlock()
	if p != nil && p.key == key {
		return p, nil
	}
	p, err := discover(ctx, c)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if old := s.cached; old != nil && old.key != key {
		old.hc.CloseIdleConnections()
	}
	s.cached = p
	s.mu.Unlock()
	return p, nil
}

// ErrSSOProvider: the provider could not be reached or answered wrong
// (502).
var ErrSSOProvider = errors.New("the single sign-on provider did not answer as expected")

func discover(ctx context.Context, c SSOSettings) (*ssoProvider, error) {
	hc, err := ssoHTTPClient(c.CABundle)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, hc), ssoHTTPTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, c.Issuer)
	if err != nil {
		hc.CloseIdleConnections()
		return nil, fmt.Errorf("%w: discovery at %s: %v (check the issuer URL, and the CA bundle for a private provider)", ErrSSOProvider, c.Issuer, err)
	}
	// Discovery's default is client_secret_basic (OpenID Connect
	// Discovery 1.0 §3); a provider that takes only client_secret_post
	// gets the secret in the body.
	var meta struct {
		Methods []string `json:"token_endpoint_auth_methods_supported"`
	}
	style := oauth2.AuthStyleInHeader
	if p.Claims(&meta) == nil && len(meta.Methods) > 0 && !slices.Contains(meta.Methods, "client_secret_basic") && slices.Contains(meta.Methods, "client_secret_post") {
		style = oauth2.AuthStyleInParams
	}
	return &ssoProvider{key: c.Issuer + "\x00" + c.CABundle, provider: p, hc: hc, style: style}, nil
}

// ssoHTTPClient reaches the provider: TLS 1.2+, the system's roots plus
// caPEM, no redirects followed, bounded.
func ssoHTTPClient(caPEM string) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caPEM != "" && !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, fmt.Errorf("%w: sso ca-bundle: no certificate in it", ErrInvalid)
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: ssoHTTPTimeout, MaxIdleConns: 4, IdleConnTimeout: time.Minute, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr, Timeout: ssoHTTPTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// equal compares two secrets in constant time.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
