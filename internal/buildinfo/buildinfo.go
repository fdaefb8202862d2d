// Package buildinfo holds the version and source revision stamped into the
// binaries at link time.
package buildinfo

import "runtime/debug"

// Version and Commit are set with -ldflags "-X ...". When unset (go run,
// go test), Commit falls back to the VCS revision Go recorded, if any.
var (
	Version = "dev"
	Commit  = ""
)

// String returns "VERSION (commit COMMIT)".
func String() string {
	return Version + " (commit " + revision() + ")"
}

func revision() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
