// Package units renders quantities for people.
package units

import (
	"fmt"
	"time"
)

// Bytes renders a byte count for people: KiB, MiB, GiB.
func Bytes(n int64) string {
	switch {
	case n <= 0:
		return "0"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// ClockOffset renders the platform's clock minus a collector host's, as
// people say it: "in step", or "10m0s behind the platform" (whole seconds:
// it is measured to about one).
func ClockOffset(platformMinusHost time.Duration) string {
	d := platformMinusHost.Round(time.Second)
	switch {
	case d.Abs() < 2*time.Second:
		return "in step with the platform"
	case d > 0:
		return d.String() + " behind the platform"
	}
	return (-d).String() + " ahead of the platform"
}
