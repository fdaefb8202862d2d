// Package ldap is the LDAP and Active Directory integration: it collects
// users, groups, organizational units and computers, with the
// relationships between them (user MEMBER_OF group, group CONTAINS group,
// OU HAS user and computer), from a directory server over LDAP.
//
// It binds with a DN and a secret password (simple bind), over ldaps://
// or ldap:// with StartTLS, trusting the CA certificate its config gives
// (skipping verification only when the config says so, logged as a
// warning); plain ldap:// without StartTLS is refused unless the config
// allows it. Every search uses the paged results control (RFC 2696), so a
// server's size limit never truncates a run, and holds one page in memory.
// Active Directory is recognised from its root DSE: its entries are keyed
// by objectSid (objectGUID for OUs) and mapped from userAccountControl,
// lastLogonTimestamp, pwdLastSet and accountExpires, and its ranged
// member attributes are read in full; any other server is read as
// generic LDAP (inetOrgPerson, groupOfNames, organizationalUnit, device),
// keyed by entryUUID.
//
// Its validate mode connects, binds and reads one entry of each kind it
// would collect, and emits nothing.
//
// Files: config.go (the config and its TLS), conn.go (dial, bind, and
// errors mapped to the SDK's), search.go (paged searches, ranged
// attributes), mapping.go (entries to entities, AD's encodings),
// collect.go (the run and its relationships), validate.go.
package ldap
