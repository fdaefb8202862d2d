// Package ldaptest runs a real OpenLDAP server (Debian's slapd) for tests:
// its own config directory, database and ports on 127.0.0.1, TLS (ldaps://
// and StartTLS) with a CA it generates, a size limit of 500 on searches
// that do not page, a read-only service account with a random password,
// and a directory loaded offline (slapadd) from LDIF that Generate writes:
// users, groups (some nested), organizational units and computers.
//
// It never touches /etc or the system's slapd. A missing slapd or
// ldap-utils skips the test, or fails it under CI=true.
package ldaptest
