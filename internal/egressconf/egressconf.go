// Package egressconf is what the collector and the integration SDK share
// of a proxy setting: the no-proxy matching and the document a job gets
// when its integration asks for the collector's proxy
// (docs/integration-contract.md, "Egress"). It uses the standard library
// only: every integration binary links it.
package egressconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// JobPath is where a job that asked for the proxy finds its Job document
// (a 0400 secret, like the config).
const JobPath = "/run/collector/egress.json"

// MaxJobSize bounds the document.
const MaxJobSize = 1 << 20

// Job is the proxy a job gets: the collector's own settings.
type Job struct {
	// Proxy is http://[user:password@]host:port or https://...
	Proxy string `json:"proxy"`
	// NoProxy lists the hosts reached directly (Bypass).
	NoProxy []string `json:"no_proxy,omitempty"`
	// ExtraCA is a PEM bundle trusted beside the system's roots (a
	// TLS-inspecting proxy's CA).
	ExtraCA string `json:"extra_ca,omitempty"`
}

// ReadJob reads the document at path; nil without error when there is
// none (the integration did not ask, or the collector has no proxy).
func ReadJob(path string) (*Job, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var j Job
	// Unknown fields are a newer runner's: an image built with this SDK
	// must keep working under it.
	dec := json.NewDecoder(io.LimitReader(f, MaxJobSize)) // longer: a decode error
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("egress document %s: %w", path, err)
	}
	if _, err := j.ProxyURL(); err != nil {
		return nil, err
	}
	return &j, nil
}

// ProxyURL parses the proxy: http or https with a host, without revealing
// a password in its error.
func (j *Job) ProxyURL() (*url.URL, error) {
	u, err := url.Parse(j.Proxy)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, errors.New("egress document: proxy: want http://[user:password@]host:port or https://...")
	}
	return u, nil
}

// Configure makes t use the job's proxy (with its no-proxy list) and
// trust the extra CA beside the system's roots.
func (j *Job) Configure(t *http.Transport) error {
	u, err := j.ProxyURL()
	if err != nil {
		return err
	}
	noProxy := j.NoProxy
	t.Proxy = func(r *http.Request) (*url.URL, error) { return ProxyFor(u, noProxy, r.URL), nil }
	if j.ExtraCA != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(j.ExtraCA)) {
			return errors.New("egress document: extra_ca holds no PEM certificate")
		}
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		t.TLSClientConfig.RootCAs = pool
	}
	return nil
}

// Password is the proxy's password, "" without one.
func (j *Job) Password() string {
	u, err := url.Parse(j.Proxy)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// ProxyFor is the proxy of a request URL, nil when it goes directly.
// Unlike http.ProxyFromEnvironment it proxies loopback hosts too, unless
// the no-proxy list names them.
func ProxyFor(proxy *url.URL, noProxy []string, u *url.URL) *url.URL {
	if proxy == nil || u == nil {
		return nil
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if Bypass(noProxy, u.Hostname(), port) {
		return nil
	}
	return proxy
}

// Bypass says whether host (a name or an address) at port is on the
// no-proxy list.
func Bypass(noProxy []string, host, port string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	ip := net.ParseIP(host)
	for _, e := range noProxy {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if e == "*" {
			return true
		}
		if _, n, err := net.ParseCIDR(e); err == nil {
			if ip != nil && n.Contains(ip) {
				return true
			}
			continue
		}
		name, ePort := e, ""
		if h, p, err := net.SplitHostPort(e); err == nil {
			name, ePort = h, p
		}
		name = strings.TrimSuffix(strings.Trim(name, "[]"), ".")
		if ePort != "" && ePort != port {
			continue
		}
		if eip := net.ParseIP(name); eip != nil {
			if ip != nil && eip.Equal(ip) {
				return true
			}
			continue
		}
		if sub, ok := strings.CutPrefix(name, "."); ok {
			if strings.HasSuffix(host, "."+sub) {
				return true
			}
			continue
		}
		if host == name || strings.HasSuffix(host, "."+name) {
			return true
		}
	}
	return false
}
