package termsafe

import "unicode/utf8"

// JSON escapes, in JSON text, what encoding/json leaves raw and a terminal
// would act on: DEL, the C1 controls and the other characters Escaped
// reports become \uNNNN escapes (a surrogate pair above U+FFFF), and bytes
// that are not valid UTF-8 become \ufffd, as encoding/json itself writes
// them in the strings it encodes (a json.RawMessage is copied as is).
// encoding/json escapes the C0 controls and U+2028, U+2029 already; JSON
// escapes them too, for text from elsewhere. In valid JSON these characters
// can only be inside strings, so the result is valid JSON with the same
// meaning. Other characters, in any script, are kept.
func JSON(b []byte) []byte {
	i := firstUnsafeJSON(b)
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out = append(out, `\ufffd`...)
		case r == ' ' || r == '\t' || r == '\n' || r == '\r', !Escaped(r): // JSON whitespace, or safe
			out = append(out, b[i:i+n]...)
		case r > 0xffff:
			r -= 0x10000
			out = appendU(appendU(out, 0xd800+(r>>10)), 0xdc00+(r&0x3ff))
		default:
			out = appendU(out, r)
		}
		i += n
	}
	return out
}

func firstUnsafeJSON(b []byte) int {
	for i, c := range b {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c >= 0x7f {
			return i
		}
	}
	return len(b)
}

func appendU(out []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}
