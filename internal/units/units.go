// Package units renders quantities for people.
package units

import "fmt"

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
