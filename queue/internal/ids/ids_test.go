package ids_test

import (
	"regexp"
	"testing"

	"github.com/collectorhq/collector/queue/internal/ids"
)

func TestFormatAndUniqueness(t *testing.T) {
	jobRE := regexp.MustCompile(`^job_[0-9a-f]{32}$`)
	leaseRE := regexp.MustCompile(`^lease_[0-9a-f]{32}$`)
	seen := make(map[string]bool)
	for range 1000 {
		j, l := ids.Job(), ids.Lease()
		if !jobRE.MatchString(j) || !leaseRE.MatchString(l) {
			t.Fatalf("ids %q, %q do not match job_/lease_ + 32 hex digits", j, l)
		}
		if seen[j] || seen[l] {
			t.Fatalf("duplicate id %q or %q", j, l)
		}
		seen[j], seen[l] = true, true
	}
}
