// Package adminctl is what the admin CLI does, as library functions: each
// command of `platform collectors|integrations|audit` is one call here, so
// tests drive the same code in-process. Each function calls the platform
// through an *api.AdminClient and writes a human table, or JSON when asked.
package adminctl
