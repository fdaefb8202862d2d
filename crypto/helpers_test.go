package crypto_test

import (
	"errors"
	"slices"
	"testing"
)

// assertOnly checks that err matches want and none of the other sentinels
// in all, so that each failure maps to exactly one error.
func assertOnly(t *testing.T, err, want error, all []error) {
	t.Helper()
	assertOnlyAll(t, err, []error{want}, all)
}

// assertOnlyAll is assertOnly for an error that must match several
// sentinels (a refined sentinel and its parent).
func assertOnlyAll(t *testing.T, err error, wants []error, all []error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", wants)
	}
	for _, want := range wants {
		if !errors.Is(err, want) {
			t.Fatalf("got error %q, want errors.Is(err, %q)", err, want)
		}
	}
	for _, other := range all {
		if !slices.Contains(wants, other) && errors.Is(err, other) {
			t.Errorf("error %q also matches %q", err, other)
		}
	}
}
