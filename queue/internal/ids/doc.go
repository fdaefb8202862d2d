// Package ids makes the random identifiers of jobs and leases.
package ids
