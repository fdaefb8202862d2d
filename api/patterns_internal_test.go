package api

import (
	"regexp"
	"strings"
	"testing"
)

// TestBoundedPatterns: the patterns with their bound apart accept exactly
// what the counted repetitions they replace accept, at and around each
// bound.
func TestBoundedPatterns(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("a", 64)
	for _, c := range []struct {
		name    string
		got     bounded
		counted string
		unit    string
		prefix  string
		suffix  string
	}{
		{"pool", poolPattern, `^[a-z0-9][a-z0-9._-]{0,62}$`, "a", "", ""},
		{"image", imagePattern, `^[a-zA-Z0-9][a-zA-Z0-9._/:@+-]{0,254}$`, "b", "", ""},
		{"token", tokenPattern, `^[A-Za-z0-9_-]{1,200}$`, "c", "", ""},
		{"field", fieldPattern, `^[A-Za-z0-9_.-]{1,128}$`, "d", "", ""},
		{"digest ref", digestRef, `^[a-zA-Z0-9][a-zA-Z0-9._/:+-]{0,254}@sha256:[0-9a-f]{64}$`, "e", "", digest},
	} {
		want := regexp.MustCompile(c.counted)
		for n := 0; n <= 260; n++ {
			for _, s := range []string{
				c.prefix + strings.Repeat(c.unit, n) + c.suffix,
				"-" + strings.Repeat(c.unit, n) + c.suffix,
				strings.Repeat(c.unit, n) + " " + c.suffix,
				strings.Repeat(c.unit, n) + "." + c.suffix,
			} {
				if got, w := c.got.MatchString(s), want.MatchString(s); got != w {
					t.Errorf("%s: %q (%d bytes): %v, the counted pattern says %v", c.name, s, len(s), got, w)
				}
			}
		}
	}
}
