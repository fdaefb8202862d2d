package ldap

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/collectorhq/collector/integration"
)

// Directory kinds.
const (
	DirectoryAuto    = "auto"
	DirectoryAD      = "active_directory"
	DirectoryGeneric = "generic"
)

// Config is the integration's config document (integrations/ldap/config.schema.json).
type Config struct {
	// URL is ldaps://host[:636] or ldap://host[:389].
	URL string `json:"url"`
	// StartTLS upgrades an ldap:// connection to TLS before binding.
	StartTLS bool `json:"start_tls"`
	// BindDN and BindPassword are the simple bind's credentials.
	BindDN       string             `json:"bind_dn"`
	BindPassword integration.Secret `json:"bind_password"`
	// BaseDN is where searches start (default: the server's naming context).
	BaseDN string `json:"base_dn"`
	// CACert is the PEM certificate(s) of the CA the server's certificate
	// must chain to (default: the system's roots).
	CACert string `json:"ca_cert"`
	// ServerName is the name the certificate must carry (default: the
	// URL's host).
	ServerName string `json:"server_name"`
	// InsecureSkipVerify accepts any certificate (logged as a warning).
	InsecureSkipVerify bool `json:"insecure_skip_verify"`
	// AllowPlaintext allows ldap:// without StartTLS: the password then
	// crosses the network in clear.
	AllowPlaintext bool `json:"allow_plaintext"`
	// Directory is auto, active_directory or generic.
	Directory string `json:"directory"`
	// PageSize is the paged results page size (default 500; a group
	// search pages at most groupPageSize).
	PageSize int `json:"page_size"`
	// TimeoutSeconds bounds each network operation (default 30).
	TimeoutSeconds int `json:"timeout_seconds"`
	// Filters replace the default filter of a kind.
	UserFilter     string `json:"user_filter"`
	GroupFilter    string `json:"group_filter"`
	OUFilter       string `json:"ou_filter"`
	ComputerFilter string `json:"computer_filter"`
}

// Defaults.
const (
	DefaultPageSize = 500
	DefaultTimeout  = 30 * time.Second
	maxPageSize     = 10_000
)

// parseConfig decodes and checks a config, with defaults set.
func parseConfig(raw []byte) (*Config, error) {
	var c Config
	if err := integration.DecodeConfig(raw, &c); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", integration.ErrBadConfig, err)
	}
	return &c, nil
}

// check names the first bad field and sets defaults.
func (c *Config) check() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "" || err != nil || u.Host == "":
		return fmt.Errorf("url %q: want ldaps://host[:port] or ldap://host[:port]", c.URL)
	case u.Scheme != "ldaps" && u.Scheme != "ldap":
		return fmt.Errorf("url %q: the scheme must be ldaps or ldap", c.URL)
	case u.Scheme == "ldaps" && c.StartTLS:
		return fmt.Errorf("start_tls: an ldaps:// URL is TLS already")
	case u.Scheme == "ldap" && !c.StartTLS && !c.AllowPlaintext:
		return fmt.Errorf("url %q: ldap:// sends the password in clear: set start_tls (or allow_plaintext, for a test server)", c.URL)
	case c.BindDN == "" || c.BindPassword.IsZero():
		return fmt.Errorf("bind_dn and bind_password are required (simple bind)")
	case c.PageSize < 0 || c.PageSize > maxPageSize:
		return fmt.Errorf("page_size %d: want 1 to %d", c.PageSize, maxPageSize)
	case c.TimeoutSeconds < 0:
		return fmt.Errorf("timeout_seconds %d: want more than 0", c.TimeoutSeconds)
	}
	switch c.Directory {
	case "":
		c.Directory = DirectoryAuto
	case DirectoryAuto, DirectoryAD, DirectoryGeneric:
	default:
		return fmt.Errorf("directory %q: want %s, %s or %s", c.Directory, DirectoryAuto, DirectoryAD, DirectoryGeneric)
	}
	if c.CACert != "" {
		if _, err := c.roots(); err != nil {
			return err
		}
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	return nil
}

// timeout is the bound of each network operation.
func (c *Config) timeout() time.Duration {
	if c.TimeoutSeconds > 0 {
		return time.Duration(c.TimeoutSeconds) * time.Second
	}
	return DefaultTimeout
}

// roots are the CA certificates of ca_cert.
func (c *Config) roots() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(strings.TrimSpace(c.CACert))) {
		return nil, fmt.Errorf("ca_cert: no PEM certificate in it")
	}
	return pool, nil
}

// tlsConfig is the TLS client config for the server.
func (c *Config) tlsConfig() (*tls.Config, error) {
	u, _ := url.Parse(c.URL)
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname(), InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // only when the config says so, logged
	if c.ServerName != "" {
		tc.ServerName = c.ServerName
	}
	if c.CACert != "" {
		pool, err := c.roots()
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
