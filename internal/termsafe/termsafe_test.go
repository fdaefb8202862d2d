package termsafe_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/collectorhq/collector/internal/termsafe"
)

// hostile are strings a collector or an integration could send to take
// over an administrator's terminal, and what String shows instead.
var hostile = map[string]string{
	"\x1b[2J\x1b[H": `\x1b[2J\x1b[H`, // clear screen, cursor home
	"\x1b]8;;https://evil.example\x1b\\click": `\x1b]8;;https://evil.example\x1b\click`, // OSC 8 hyperlink
	"\x1b]0;title\x07":                        `\x1b]0;title\x07`,                       // OSC set title, BEL
	"bell\a":                                  `bell\x07`,                               // BEL
	"\u009b2J":                                `\u009b2J`,                               // C1 CSI, one character
	"\x9b2J":                                  `\x9b2J`,                                 // CSI as a raw byte (not UTF-8)
	"\u202egnp.exe":                           `\u202egnp.exe`,                          // RIGHT-TO-LEFT OVERRIDE
	"a\u2066b\u2069\u200f\u061c":              `a\u2066b\u2069\u200f\u061c`,             // isolates, RLM, ALM
	"del\x7f":                                 `del\x7f`,                                // DEL
	"two\nlines\r\tx\x00":                     `two\nlines\r\tx\x00`,                    // line breaks, tab, NUL
	"sep\u2028\u2029":                         `sep\u2028\u2029`,                        // line and paragraph separators
	"tag\U000E0041\u200b\ufeff":               `tag\U000e0041\u200b\ufeff`,              // invisible tag, zero-width space, BOM
}

func TestString(t *testing.T) {
	for in, want := range hostile {
		if got := termsafe.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	for _, keep := range []string{"", "plain ascii ~!", "Zoë, 東京, Ελλάδα, עברית, العربية", "👩‍👩‍👧 family", "क्‍ष", `C:\path`} {
		if got := termsafe.String(keep); got != keep {
			t.Errorf("String(%q) = %q, want it unchanged", keep, got)
		}
	}
}

func TestText(t *testing.T) {
	in := "line 1\tok\nline 2 \x1b[31mred\x1b[0m\r\u202e\n"
	want := "line 1\tok\nline 2 \\x1b[31mred\\x1b[0m\\r\\u202e\n"
	if got := termsafe.Text(in); got != want {
		t.Errorf("Text(%q) = %q, want %q", in, got, want)
	}
}

func TestPrintable(t *testing.T) {
	for in := range hostile {
		if termsafe.Printable(in) {
			t.Errorf("Printable(%q) = true", in)
		}
	}
	for _, ok := range []string{"", "podman 5.4.0", "running", "Zoë 東京 👩‍👩‍👧"} {
		if !termsafe.Printable(ok) {
			t.Errorf("Printable(%q) = false", ok)
		}
	}
}

func TestJSON(t *testing.T) {
	for in := range hostile {
		enc, err := json.Marshal(map[string]string{"v": in, "é": "東京"})
		if err != nil {
			t.Fatal(err)
		}
		got := termsafe.JSON(enc)
		if !utf8.Valid(got) || hasEscaped(string(got), " \n\t\r") {
			t.Errorf("JSON(%s) = %s: raw characters left", enc, got)
		}
		var back map[string]string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("JSON(%s) = %s: not JSON: %v", enc, got, err)
		}
		if want := strings.ToValidUTF8(in, "\ufffd"); back["v"] != want || back["é"] != "東京" {
			t.Errorf("JSON(%s) reads back as %q, want %q", enc, back, want)
		}
	}
	raw := []byte("{\"v\": \"\xff\u0085\x7f\"}") // a json.RawMessage is copied as is
	if got, want := string(termsafe.JSON(raw)), `{"v": "\ufffd\u0085\u007f"}`; got != want {
		t.Errorf("JSON(%q) = %s, want %s", raw, got, want)
	}
}

// hasEscaped reports whether s, valid UTF-8, holds a character String
// escapes, other than those in allowed.
func hasEscaped(s, allowed string) bool {
	for _, r := range s {
		if termsafe.Escaped(r) && !strings.ContainsRune(allowed, r) {
			return true
		}
	}
	return false
}

func FuzzString(f *testing.F) {
	for in := range hostile {
		f.Add(in)
	}
	f.Add("Zoë 👩‍👩‍👧 \ufffd")
	f.Fuzz(func(t *testing.T, s string) {
		got := termsafe.String(s)
		if !utf8.ValidString(got) || hasEscaped(got, "") {
			t.Fatalf("String(%q) = %q: raw characters left", s, got)
		}
		if termsafe.Printable(s) != (got == s) {
			t.Fatalf("Printable(%q) = %v, but String changes it to %q", s, termsafe.Printable(s), got)
		}
		if text := termsafe.Text(s); !utf8.ValidString(text) || hasEscaped(text, "\n\t") {
			t.Fatalf("Text(%q) = %q: raw characters left", s, text)
		}
		enc, _ := json.Marshal(s)
		var want, back string
		json.Unmarshal(enc, &want) // encoding/json writes each invalid byte as U+FFFD
		safe := termsafe.JSON(enc)
		if err := json.Unmarshal(safe, &back); err != nil || back != want || !utf8.Valid(safe) || hasEscaped(string(safe), "") {
			t.Fatalf("JSON(%s) = %s, reads back as %q, %v; want %q", enc, safe, back, err, want)
		}
	})
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"a\x00b\x00", 10, "ab"},
		{"bad\xffutf8", 20, "badutf8"},
		{"héllo", 2, "h"}, // not half of é
		{"héllo", 3, "hé"},
	} {
		if got := termsafe.Clip(c.in, c.n); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
