package termsafe

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escaped reports whether String writes r as an escape: the C0 controls,
// DEL, the C1 controls, the line and paragraph separators (U+2028,
// U+2029), and the format characters (Unicode category Cf), which include
// the bidirectional embeddings, overrides and isolates (U+202A-U+202E,
// U+2066-U+2069) and marks (U+200E, U+200F, U+061C), the invisible tag
// characters (U+E0000-U+E007F) and zero-width spaces. Zero-width joiner
// and non-joiner (U+200D, U+200C) are kept: emoji sequences and several
// scripts need them, and they reorder nothing.
func Escaped(r rune) bool {
	switch {
	case r < 0x20 || r == 0x7f:
		return true
	case r < 0x80:
		return false
	case r <= 0x9f, r == '\u2028', r == '\u2029':
		return true
	case r == '\u200c', r == '\u200d':
		return false
	}
	return unicode.Is(unicode.Cf, r)
}

// Printable reports whether s is valid UTF-8 holding no character String
// would escape: a one-line string a terminal shows as it is.
func Printable(s string) bool { return IndexEscaped(s) < 0 }

// IndexEscaped returns the index of the first character (or invalid
// UTF-8 byte) of s that String escapes, or -1.
func IndexEscaped(s string) int {
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || Escaped(r) {
			return i
		}
		i += n
	}
	return -1
}

// String returns s with every character Escaped reports, and every byte
// that is not valid UTF-8, written as an escape: \t, \n and \r, \xNN for
// the other C0 controls, DEL and invalid bytes, \uNNNN or \UNNNNNNNN for
// the rest. The result is one line. Backslashes are not doubled, so a
// string that holds the text "\x1b" shows the same as one holding ESC:
// what matters here is that the terminal does not act on it.
func String(s string) string { return escape(s, false) }

// Text is String for multi-line text such as logs: newline and tab are
// kept, everything else String escapes is escaped (carriage return too,
// as it lets a line overwrite itself).
func Text(s string) string { return escape(s, true) }

func escape(s string, text bool) string {
	i := firstUnsafe(s, text)
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			writeByte(&b, s[i])
		case text && (r == '\n' || r == '\t'), !Escaped(r):
			b.WriteString(s[i : i+n])
		default:
			writeRune(&b, r)
		}
		i += n
	}
	return b.String()
}

// firstUnsafe returns the index of the first byte of s that escape may
// change, or len(s): the fast path, as most strings are plain ASCII.
func firstUnsafe(s string, text bool) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 0x20 && c < 0x7f) || (text && (c == '\n' || c == '\t')) {
			continue
		}
		return i
	}
	return len(s)
}

func writeByte(b *strings.Builder, c byte) {
	const hex = "0123456789abcdef"
	b.WriteString(`\x`)
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&0xf])
}

func writeRune(b *strings.Builder, r rune) {
	switch {
	case r == '\t':
		b.WriteString(`\t`)
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\r':
		b.WriteString(`\r`)
	case r < 0x80:
		writeByte(b, byte(r))
	case r <= 0xffff:
		b.WriteString(`\u`)
		writeHex(b, uint32(r), 4)
	default:
		b.WriteString(`\U`)
		writeHex(b, uint32(r), 8)
	}
}

func writeHex(b *strings.Builder, v uint32, digits int) {
	s := strconv.FormatUint(uint64(v), 16)
	b.WriteString(strings.Repeat("0", digits-len(s)))
	b.WriteString(s)
}

// Clip cuts s to at most n bytes, on a character boundary, and drops any
// invalid UTF-8 and NUL character: a bound on a string from elsewhere,
// fit for a PostgreSQL text (which holds no NUL).
func Clip(s string, n int) string {
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "")
}
