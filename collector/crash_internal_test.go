package collector

import (
	"maps"
	"slices"
	"testing"
)

// TestCrashSteps: a test image's crash list names each role's steps; the
// upgrade's bare steps are the daemon's.
func TestCrashSteps(t *testing.T) {
	list := "pulled, daemon-token,runner-ended,runner-finished"
	for role, want := range map[string][]string{"daemon": {"pulled", "token"}, "runner": {"ended", "finished"}} {
		got := slices.Sorted(maps.Keys(crashSteps(list, role)))
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", role, got, want)
		}
	}
	if len(crashSteps("", "runner")) != 0 || len(crashSteps("pulled", "runner")) != 0 {
		t.Error("steps for a role the list does not name")
	}
}
