package access

import "fmt"

// Role is what a user (or an API token) may do. Roles are ordered: each
// may do everything the one before it may.
type Role string

// The roles.
const (
	// RoleViewer reads: collectors, integrations (secrets masked), jobs,
	// data and the audit log. It never sees a secret value, an enrollment
	// token or a token of any kind.
	RoleViewer Role = "viewer"
	// RoleOperator also runs the collectors, integrations and jobs:
	// creates, edits, assigns, runs, cancels and deletes them.
	RoleOperator Role = "operator"
	// RoleAdmin also manages users, tokens of others, keys and settings.
	RoleAdmin Role = "admin"
)

// Roles lists the roles, least privileged first.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

// rank orders roles; 0 is not a role.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is a role.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtMost reports whether r grants no more than other: a token's role must
// be at most its user's.
func (r Role) AtMost(other Role) bool { return r.Valid() && other.Valid() && r.rank() <= other.rank() }

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("%w: role %q: want viewer, operator or admin", ErrInvalid, s)
	}
	return r, nil
}

// Permission is what one endpoint needs. Every route of the platform
// declares one (a route without one does not register), and Allows is the
// one place that decides.
type Permission string

// The permissions.
const (
	// PermPublic: no credential (enrollment, health, sign-in pages).
	PermPublic Permission = "public"
	// PermCollector: a collector's access token (its own jobs and heartbeats).
	PermCollector Permission = "collector"
	// PermSignedIn: any signed-in user, for their own account (their
	// session, their second factors, their own tokens).
	PermSignedIn Permission = "signed-in"
	// PermRead: read collectors, integrations, jobs, data and the audit log.
	PermRead Permission = "read"
	// PermOperate: change collectors, integrations and jobs.
	PermOperate Permission = "operate"
	// PermAdmin: users, others' tokens, keys and platform settings.
	PermAdmin Permission = "admin"
)

// Allows reports whether role may use an endpoint that needs p. The
// public and collector permissions are not about users: Allows is false
// for them, and the router handles them apart.
func Allows(role Role, p Permission) bool {
	switch p {
	case PermSignedIn, PermRead:
		return role.rank() >= RoleViewer.rank()
	case PermOperate:
		return role.rank() >= RoleOperator.rank()
	case PermAdmin:
		return role.rank() >= RoleAdmin.rank()
	}
	return false
}
