// Package egress is how the collector reaches the outside from a corporate
// network: an HTTP(S) proxy (with optional credentials), the hosts it is
// not used for (no-proxy), and an extra CA bundle for a TLS-inspecting
// proxy. The proxy is chosen by an explicit function, never from the
// environment: http.ProxyFromEnvironment skips loopback hosts and reads
// variables the daemon's and runner's containers must not carry (the
// credentials stay in the 0600 config file).
//
// The platform connection keeps its CA pin: the collector's platform
// traffic is tunneled through the proxy with CONNECT and never inspected
// (an inspecting proxy would present its own CA, which the pin refuses).
// The extra CA is trusted for the proxy itself (an https:// proxy) and for
// image registries, which an inspecting proxy may re-sign.
package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/egressconf"
)

// Settings are the operator's egress choices, as the config keeps them.
type Settings struct {
	// Proxy is http://[user:password@]host:port or https://...; "" for none.
	Proxy string
	// NoProxy lists hosts reached directly: "*", host names (a name
	// matches itself and its subdomains; ".example.com" only its
	// subdomains), IP addresses and CIDR ranges, each optionally with
	// :port.
	NoProxy []string
	// ExtraCA is a PEM bundle trusted beside the system's roots for the
	// proxy and registries (not for the platform, which is pinned).
	ExtraCA []byte
	// Mirrors are registry mirrors the collector reads integration images
	// from before the registries they mirror.
	Mirrors []Mirror
}

// Mirror is a registry mirror: images whose name starts with Prefix (a
// registry host[:port], optionally with a repository path) are read from
// Locations first, in order, then from the registry itself. Signatures
// are checked against the image's name, never the mirror's.
type Mirror struct {
	Prefix    string   `json:"prefix"`
	Locations []string `json:"locations"`
}

// ParseMirrors parses PREFIX=LOCATION[,LOCATION...] entries separated by
// ";" or newlines: "quay.io=mirror.corp:5000/quay;docker.io=mirror.corp:5000/hub".
func ParseMirrors(s string) ([]Mirror, error) {
	var out []Mirror
	for _, entry := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		prefix, locs, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("registry mirror %q: want PREFIX=LOCATION[,LOCATION...]", entry)
		}
		m := Mirror{Prefix: strings.TrimSpace(prefix)}
		for _, l := range strings.Split(locs, ",") {
			if l = strings.TrimSpace(l); l != "" {
				m.Locations = append(m.Locations, l)
			}
		}
		if err := m.Validate(); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Validate checks a mirror: a prefix and at least one location, each a
// registry host[:port] with an optional path, without a scheme.
func (m Mirror) Validate() error {
	if len(m.Locations) == 0 {
		return fmt.Errorf("registry mirror of %q: no location", m.Prefix)
	}
	for _, loc := range append([]string{m.Prefix}, m.Locations...) {
		host, _, _ := strings.Cut(loc, "/")
		if host == "" || strings.HasSuffix(loc, "/") || strings.Contains(loc, "://") ||
			strings.ContainsFunc(loc, func(r rune) bool { return r <= ' ' || r > '~' || strings.ContainsRune("\"'@\\[]{}#", r) }) {
			return fmt.Errorf("registry mirror of %q: %q is not a registry host[:port][/path]", m.Prefix, loc)
		}
	}
	return nil
}

// Fetches says whether the collector fetches integration images itself
// (through its proxy, from its mirrors) rather than leaving the pull to
// the engine, which knows neither.
func (s Settings) Fetches() bool { return s.Proxy != "" || len(s.Mirrors) > 0 }

// Proxy is a parsed proxy setting.
type Proxy struct {
	URL     *url.URL
	NoProxy []string
}

// ParseProxyURL checks a proxy URL: http or https, a host, nothing past
// the port.
func ParseProxyURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error holds the URL, password and all: keep only the reason.
		reason := errors.Unwrap(err)
		if reason == nil {
			reason = errors.New("not a URL")
		}
		return nil, fmt.Errorf("proxy URL %s: %w", Redact(raw), reason)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("proxy URL %s: want http://[user:password@]host:port or https://..., not %q", Redact(raw), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("proxy URL %s: no host", Redact(raw))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("proxy URL %s: want only scheme, credentials, host and port", Redact(raw))
	}
	u.Path = ""
	return u, nil
}

// ParseProxy parses the settings' proxy; nil without error when none is set.
func (s Settings) ParseProxy() (*Proxy, error) {
	if s.Proxy == "" {
		return nil, nil
	}
	u, err := ParseProxyURL(s.Proxy)
	if err != nil {
		return nil, err
	}
	return &Proxy{URL: u, NoProxy: s.NoProxy}, nil
}

// Validate checks the proxy URL and the extra CA bundle.
func (s Settings) Validate() error {
	if _, err := s.ParseProxy(); err != nil {
		return err
	}
	if len(s.ExtraCA) > 0 {
		if _, err := s.Roots(); err != nil {
			return err
		}
	}
	for _, m := range s.Mirrors {
		if err := m.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Roots are the system's roots plus the extra CA; nil (the system's) when
// there is no extra CA.
func (s Settings) Roots() (*x509.CertPool, error) {
	if len(s.ExtraCA) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(s.ExtraCA) {
		return nil, errors.New("extra CA bundle holds no PEM certificate")
	}
	return pool, nil
}

// ForURL returns the proxy for a request URL, nil when it goes directly.
func (p *Proxy) ForURL(u *url.URL) *url.URL {
	if p == nil || p.URL == nil || u == nil {
		return nil
	}
	return egressconf.ProxyFor(p.URL, p.NoProxy, u)
}

// Func is an http.Transport's Proxy. Unlike http.ProxyFromEnvironment it
// proxies loopback hosts too, unless the no-proxy list names them.
func (p *Proxy) Func() func(*http.Request) (*url.URL, error) {
	return func(r *http.Request) (*url.URL, error) { return p.ForURL(r.URL), nil }
}

// URLFunc is the same for callers that see only the URL (containers/image's
// SystemContext.DockerProxy).
func (p *Proxy) URLFunc() func(*url.URL) (*url.URL, error) {
	return func(u *url.URL) (*url.URL, error) { return p.ForURL(u), nil }
}

// String is the proxy URL without its password.
func (p *Proxy) String() string { return Redact(p.URL.String()) }

// Bypass says whether host (a name or an address) at port is on the
// no-proxy list (egressconf.Bypass, shared with the integration SDK).
func Bypass(noProxy []string, host, port string) bool { return egressconf.Bypass(noProxy, host, port) }

// ParseNoProxy splits a no-proxy list given as one string (commas or
// spaces, as NO_PROXY is written).
func ParseNoProxy(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		out = append(out, f)
	}
	return out
}

// Redact replaces the password of a URL, if any, with ***.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if s := strings.Index(raw, "://"); s >= 0 && s < i {
				return raw[:s+3] + "***@" + raw[i+1:]
			}
			return "***@" + raw[i+1:]
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxx")
		return strings.Replace(u.String(), ":xxx@", ":***@", 1)
	}
	return u.String()
}

// PlatformClient is api.HTTPClient for the platform pinned to pin, with
// the operator's proxy, if any, chosen by an explicit function (loopback
// hosts included) rather than from the environment.
func PlatformClient(pin, platformURL string, eg Settings) (*http.Client, error) {
	if _, err := api.PinnedTLSConfig(pin); err != nil {
		return nil, err
	}
	return PlatformClientPins(func() []string { return []string{pin} }, platformURL, eg)
}

// PlatformClientPins is PlatformClient with the CA pins read at each
// handshake (config.PlatformKeys.CAPins: two during a rotation of the
// platform's CA).
func PlatformClientPins(pins func() []string, platformURL string, eg Settings) (*http.Client, error) {
	tc := api.PinsTLSConfig(pins)
	px, err := eg.ParseProxy()
	if err != nil {
		return nil, err
	}
	if px == nil {
		return api.HTTPClient(tc), nil
	}
	host := ""
	if u, err := url.Parse(platformURL); err == nil {
		host = u.Hostname()
	}
	if tc, err = ProxyTLS(tc, eg, host); err != nil {
		return nil, err
	}
	hc := api.HTTPClient(tc)
	hc.Transport.(*http.Transport).Proxy = px.Func()
	return hc, nil
}

// Client is a plain HTTP client (system roots plus the extra CA) through
// the proxy, if any: the doctor's probe of a registry.
func Client(eg Settings, timeout time.Duration) (*http.Client, error) {
	px, err := eg.ParseProxy()
	if err != nil {
		return nil, err
	}
	roots, err := eg.Roots()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	tr.Proxy = nil
	if px != nil {
		tr.Proxy = px.Func()
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// ProxyTLS wraps the platform's pinned TLS config so that an https://
// proxy's own certificate is checked against the system's roots and the
// extra CA, while every other server (the platform, through the tunnel or
// directly) is still checked by pinned's VerifyConnection. net/http uses
// one TLS config for the proxy and the target: the proxy's handshake is
// told apart by its server name. A proxy on the platform's own host is
// held to the pin as well.
func ProxyTLS(pinned *tls.Config, s Settings, platformHost string) (*tls.Config, error) {
	p, err := s.ParseProxy()
	if err != nil || p == nil || p.URL.Scheme != "https" {
		return pinned, err
	}
	proxyHost := strings.ToLower(p.URL.Hostname())
	if strings.EqualFold(proxyHost, platformHost) {
		return pinned, nil
	}
	roots, err := s.Roots()
	if err != nil {
		return nil, err
	}
	tc := pinned.Clone()
	verifyPinned := pinned.VerifyConnection
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if strings.EqualFold(cs.ServerName, proxyHost) {
			return verifyChain(cs, roots)
		}
		return verifyPinned(cs)
	}
	return tc, nil
}

func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the proxy sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cs.ServerName})
	if err != nil {
		return fmt.Errorf("proxy certificate: %w (give its CA to the installer: --extra-ca)", err)
	}
	return nil
}

// Connect opens a tunnel to addr (host:port) through the proxy with
// CONNECT, as net/http does for an https:// target: the returned
// connection speaks to addr. roots check an https:// proxy (nil: the
// system's).
func (p *Proxy) Connect(ctx context.Context, addr string, roots *x509.CertPool, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	port := p.URL.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[p.URL.Scheme]
	}
	proxyAddr := net.JoinHostPort(p.URL.Hostname(), port)
	conn, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("connect to the proxy %s: %w", p, err)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	if p.URL.Scheme == "https" {
		tconn := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: p.URL.Hostname()})
		if err := tconn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS to the proxy %s: %w", p, err)
		}
		conn = tconn
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if p.URL.User != nil {
		pw, _ := p.URL.User.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(p.URL.User.Username()+":"+pw)))
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("CONNECT %s through the proxy %s: %w", addr, p, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("CONNECT %s through the proxy %s: %w", addr, p, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, fmt.Errorf("CONNECT %s through the proxy %s: the proxy answered %s", addr, p, resp.Status)
	}
	conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
