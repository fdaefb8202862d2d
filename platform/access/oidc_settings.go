package access

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/store"
)

// ErrSSODisabled: single sign-on is not configured (404).
var ErrSSODisabled = errors.New("single sign-on is not configured: an admin sets it up with `platform sso set`")

// SSOStore keeps the single sign-on settings, with an integrity MAC (a
// provider or a group mapping written outside the platform grants
// nothing), and the sign-in flows already finished (a callback is used
// once).
type SSOStore interface {
	// SSOSettings returns the settings: ErrNotFound if none,
	// store.ErrIntegrity if they were altered outside the platform.
	SSOSettings(ctx context.Context) (SSOSettings, error)
	// PutSSOSettings replaces the settings, auditing ev in the same
	// transaction.
	PutSSOSettings(ctx context.Context, s SSOSettings, ev store.Event) error
	// DeleteSSOSettings removes them (ErrNotFound if none), auditing ev.
	DeleteSSOSettings(ctx context.Context, ev store.Event) error
	// UseSSOFlow records the flow with that hash as finished until
	// expires, atomically: ErrConflict if it was already (a replayed
	// callback). Expired records may be dropped from now on.
	UseSSOFlow(ctx context.Context, hash string, expires, now time.Time) error
}

// SSOSettings configure single sign-on with one OpenID provider. This is
// also their stored form (JSON in a settings row with an integrity MAC);
// the client secret is stored sealed with the data key, never in clear.
type SSOSettings struct {
	// Issuer is the provider's issuer URL (https; http only on loopback).
	Issuer string `json:"issuer"`
	// ClientID is the platform's client at the provider.
	ClientID string `json:"client_id"`
	// ClientSecret is set only on the way in (Put) and when a flow needs
	// it; it is never stored or shown in clear.
	ClientSecret string `json:"-"`
	// SealedSecret is the client secret sealed with the data key.
	SealedSecret []byte `json:"client_secret_sealed"`
	// AllowedDomains, if set, are the email domains (exact, lowercase)
	// allowed to sign in; the provider must say the email is verified.
	AllowedDomains []string `json:"allowed_domains,omitempty"`
	// RequiredClaim, if set, is "name=value": the ID token must carry the
	// claim with that value (or, for a list, among its values).
	RequiredClaim string `json:"required_claim,omitempty"`
	// GroupsClaim names the ID token's claim listing the user's groups
	// (default "groups").
	GroupsClaim string `json:"groups_claim"`
	// GroupRoles maps a group to a role; the highest role of the user's
	// groups wins. A user in no mapped group is refused.
	GroupRoles map[string]Role `json:"group_roles"`
	// Scopes are asked for besides openid, email and profile (some
	// providers send groups only for a "groups" scope).
	Scopes []string `json:"scopes,omitempty"`
	// CABundle is PEM certificates trusted for the provider besides the
	// system's (a private provider).
	CABundle  string    `json:"ca_bundle,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DefaultGroupsClaim is the groups claim's name unless set.
const DefaultGroupsClaim = "groups"

// sealedSecretAAD binds the sealed client secret to its use.
var sealedSecretAAD = []byte("sso client secret v1")

// Bounds of the settings.
const (
	maxSSOText       = 256
	maxSSOSecret     = 1024
	maxSSOListLen    = 100
	maxSSOCABundle   = 256 << 10
	ssoHTTPTimeout   = 15 * time.Second
	ssoFlowLifetime  = 10 * time.Minute
	ssoMaxIssuedSkew = 5 * time.Minute
)

func printable(s string, max int) bool {
	return s != "" && len(s) <= max && utf8.ValidString(s) && termsafe.IndexEscaped(s) < 0
}

// Normalize trims and lowercases what has one form, sorts the lists and
// fills the defaults.
func (c *SSOSettings) Normalize() {
	c.Issuer, c.ClientID, c.RequiredClaim = strings.TrimSpace(c.Issuer), strings.TrimSpace(c.ClientID), strings.TrimSpace(c.RequiredClaim)
	c.GroupsClaim = strings.TrimSpace(c.GroupsClaim)
	if c.GroupsClaim == "" {
		c.GroupsClaim = DefaultGroupsClaim
	}
	for i, d := range c.AllowedDomains {
		c.AllowedDomains[i] = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
	}
	sort.Strings(c.AllowedDomains)
	c.AllowedDomains = slices.Compact(c.AllowedDomains)
	sort.Strings(c.Scopes)
	c.Scopes = slices.Compact(c.Scopes)
}

// Validate checks the settings (a secret is checked if set); errors wrap
// ErrInvalid and name the field.
func (c *SSOSettings) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: sso %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	if err := checkIssuer(c.Issuer); err != nil {
		return bad("issuer", "%v", err)
	}
	if !printable(c.ClientID, maxSSOText) || strings.ContainsAny(c.ClientID, " \t") {
		return bad("client-id", "must be printable, without spaces, at most %d bytes", maxSSOText)
	}
	if c.ClientSecret != "" && !printable(c.ClientSecret, maxSSOSecret) {
		return bad("client-secret", "must be printable, at most %d bytes", maxSSOSecret)
	}
	if len(c.AllowedDomains) > maxSSOListLen {
		return bad("allowed-domains", "at most %d", maxSSOListLen)
	}
	for _, d := range c.AllowedDomains {
		if !validDomain(d) {
			return bad("allowed-domains", "%q is not a domain name (like example.com)", d)
		}
	}
	if c.RequiredClaim != "" {
		name, value, ok := strings.Cut(c.RequiredClaim, "=")
		if !ok || !claimName(name) || !printable(value, maxSSOText) {
			return bad("required-claim", "want name=value (a claim name of letters, digits, _ - . :, and a printable value)")
		}
	}
	if !claimName(c.GroupsClaim) {
		return bad("groups-claim", "%q is not a claim name", c.GroupsClaim)
	}
	if len(c.GroupRoles) == 0 {
		return bad("group-roles", "map at least one group to a role (group=role): a user in no mapped group is refused")
	}
	if len(c.GroupRoles) > maxSSOListLen {
		return bad("group-roles", "at most %d", maxSSOListLen)
	}
	for g, r := range c.GroupRoles {
		if !printable(g, maxSSOText) {
			return bad("group-roles", "a group name must be printable, at most %d bytes", maxSSOText)
		}
		if !r.Valid() {
			return bad("group-roles", "group %q: role %q: want viewer, operator or admin", g, r)
		}
	}
	if len(c.Scopes) > 20 {
		return bad("scopes", "at most 20")
	}
	for _, sc := range c.Scopes {
		if !claimName(sc) {
			return bad("scopes", "%q is not a scope name", sc)
		}
	}
	if c.CABundle != "" {
		if err := checkCABundle(c.CABundle); err != nil {
			return bad("ca-bundle", "%v", err)
		}
	}
	return nil
}

func checkIssuer(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "" || len(raw) > 2048:
		return errors.New("is required (at most 2048 bytes)")
	case err != nil:
		return err
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Host == "":
		return fmt.Errorf("%q: want https://host[/path], without user, query or fragment", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q: must be https (http only on loopback)", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func claimName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.:/", r)) {
			return false
		}
	}
	return true
}

func checkCABundle(s string) error {
	if len(s) > maxSSOCABundle {
		return fmt.Errorf("at most %d bytes", maxSSOCABundle)
	}
	rest, n := []byte(s), 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %q block: want only CERTIFICATE blocks", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %v", n+1, err)
		}
		n++
	}
	if n == 0 || strings.TrimSpace(string(rest)) != "" {
		return errors.New("want PEM certificates only")
	}
	return nil
}

// fingerprint identifies one version of the settings: a flow started
// under other settings does not finish.
func (c SSOSettings) fingerprint() string {
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// RoleFor returns the highest role the groups map to ("" if none).
func (c SSOSettings) RoleFor(groups []string) Role {
	var best Role
	for _, g := range groups {
		if r, ok := c.GroupRoles[g]; ok && r.rank() > best.rank() {
			best = r
		}
	}
	return best
}

// Settings returns the stored settings (the secret sealed, not opened):
// ErrSSODisabled if there are none.
func (s *SSO) Settings(ctx context.Context) (SSOSettings, error) {
	c, err := s.svc.st.SSOSettings(ctx)
	if errors.Is(err, ErrNotFound) {
		return SSOSettings{}, ErrSSODisabled
	}
	return c, err
}

// Enabled reports whether single sign-on is configured (and its settings
// pass their integrity check).
func (s *SSO) Enabled(ctx context.Context) bool {
	_, err := s.Settings(ctx)
	if err != nil && !errors.Is(err, ErrSSODisabled) {
		s.svc.log.Error("single sign-on is off: its settings do not read", "err", err)
	}
	return err == nil
}

// Put checks and stores new settings. A ClientSecret is sealed; an empty
// one keeps the stored secret if the issuer and client ID are the same
// (else a secret is required). The act is audited without the secret.
func (s *SSO) Put(ctx context.Context, c SSOSettings, actor string, m Meta) (SSOSettings, error) {
	c.Normalize()
	if err := c.Validate(); err != nil {
		return SSOSettings{}, err
	}
	old, err := s.Settings(ctx)
	if err != nil && !errors.Is(err, ErrSSODisabled) {
		return SSOSettings{}, err
	}
	switch {
	case c.ClientSecret != "":
		if c.SealedSecret, err = s.svc.seal.Seal([]byte(c.ClientSecret), sealedSecretAAD); err != nil {
			return SSOSettings{}, err
		}
	case err == nil && old.Issuer == c.Issuer && old.ClientID == c.ClientID:
		c.SealedSecret = old.SealedSecret
	default:
		return SSOSettings{}, fmt.Errorf("%w: sso client-secret: required for a new provider or client ID", ErrInvalid)
	}
	secretChanged := c.ClientSecret != ""
	c.ClientSecret, c.UpdatedAt = "", s.svc.now().UTC()
	details := map[string]any{"issuer": c.Issuer, "client_id": c.ClientID, "allowed_domains": c.AllowedDomains,
		"required_claim": c.RequiredClaim, "groups_claim": c.GroupsClaim, "group_roles": c.GroupRoles,
		"scopes": c.Scopes, "ca_bundle": c.CABundle != "", "secret_changed": secretChanged}
	ev := EventFor(c.UpdatedAt, actor, "sso.settings_changed", "sso", m, details)
	if err := s.svc.st.PutSSOSettings(ctx, c, ev); err != nil {
		return SSOSettings{}, err
	}
	return c, nil
}

// Disable removes the settings: single sign-on stops at once (sessions
// already open stay until they end; users keep their accounts).
func (s *SSO) Disable(ctx context.Context, actor string, m Meta) error {
	ev := EventFor(s.svc.now(), actor, "sso.disabled", "sso", m, nil)
	err := s.svc.st.DeleteSSOSettings(ctx, ev)
	if errors.Is(err, ErrNotFound) {
		return ErrSSODisabled
	}
	return err
}

// secret opens the stored client secret.
func (s *SSO) secret(c SSOSettings) (string, error) {
	b, err := s.svc.seal.Open(c.SealedSecret, sealedSecretAAD)
	if err != nil {
		return "", fmt.Errorf("open the sso client secret: %w", err)
	}
	return string(b), nil
}
