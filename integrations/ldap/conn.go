package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/collectorhq/collector/integration"
)

// connect dials the server (TLS for ldaps://, StartTLS when asked) and
// binds; the error wraps the SDK's error for what went wrong.
func connect(ctx context.Context, c *Config, log *slog.Logger) (*ldap.Conn, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", integration.ErrBadConfig, err)
	}
	if c.InsecureSkipVerify {
		log.Warn("TLS certificate verification is OFF (insecure_skip_verify): the server is not authenticated and the password could be taken by whoever answers")
	}
	d := &net.Dialer{Timeout: c.timeout()}
	conn, err := ldap.DialURL(c.URL, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, classify(fmt.Sprintf("connect to %s", c.URL), err)
	}
	conn.SetTimeout(c.timeout())
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if c.StartTLS {
		if err := conn.StartTLS(tc); err != nil {
			conn.Close()
			return nil, classify(fmt.Sprintf("StartTLS with %s", c.URL), err)
		}
	}
	if strings.HasPrefix(c.URL, "ldap://") && !c.StartTLS {
		log.Warn("plaintext LDAP (allow_plaintext): the bind password crosses the network in clear")
	}
	if err := conn.Bind(c.BindDN, c.BindPassword.Reveal()); err != nil {
		conn.Close()
		return nil, classify(fmt.Sprintf("bind as %s", c.BindDN), err)
	}
	return conn, nil
}

// classify wraps err with the SDK error for its cause, so the run exits
// with the code that says why (docs/integration-contract.md).
func classify(what string, err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		le       *ldap.Error
		ne       net.Error
	)
	switch {
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify),
		// go-ldap's StartTLS reports the handshake's error as text only.
		strings.Contains(err.Error(), "x509: "), strings.Contains(err.Error(), "tls: failed to verify certificate"):
		return fmt.Errorf("%w: %s: the server's TLS certificate is not trusted (check ca_cert and server_name): %v", integration.ErrCertificate, what, err)
	case errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInvalidCredentials:
		return fmt.Errorf("%w: %s: invalid credentials (LDAP result 49): check bind_dn and bind_password", integration.ErrAuth, what)
	case errors.As(err, &le) && (le.ResultCode == ldap.LDAPResultInsufficientAccessRights || le.ResultCode == ldap.LDAPResultInappropriateAuthentication ||
		le.ResultCode == ldap.LDAPResultConfidentialityRequired || le.ResultCode == ldap.LDAPResultStrongAuthRequired):
		return fmt.Errorf("%w: %s: %v", integration.ErrAccess, what, err)
	case errors.As(err, &le) && le.ResultCode == ldap.ErrorNetwork, errors.As(err, &ne):
		return fmt.Errorf("%w: %s: %v", integration.ErrUnreachable, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
