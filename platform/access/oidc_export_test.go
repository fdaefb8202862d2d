package access

// SSOIdentity exposes the claim rules to the black-box tests: the login
// and role an ID token's claims get, or the refusal.
func SSOIdentity(c SSOSettings, issuer, subject string, claims map[string]any) (login string, role Role, err error) {
	c.Normalize()
	id, err := identity(c, issuer, subject, claims)
	return id.login, id.role, err
}
