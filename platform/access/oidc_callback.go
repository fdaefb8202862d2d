package access

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/collectorhq/collector/internal/termsafe"
)

// SSOCallback is what the provider sent the browser back with (RFC 6749
// §4.1.2, RFC 9207's iss).
type SSOCallback struct {
	Code, State string
	// Error and ErrorDescription are the provider's refusal, if any.
	Error, ErrorDescription string
	// Issuer is the iss parameter (RFC 9207), if the provider sends one.
	Issuer string
}

// Bounds of a callback's parameters.
const (
	maxCallbackQuery = 8 << 10
	maxCallbackCode  = 2048
	maxCallbackState = 512
	maxCallbackError = 256
	maxCallbackDesc  = 512
)

// ParseSSOCallback reads the callback's query. Each parameter it reads
// appears at most once and is printable and bounded; a refusal from the
// provider (error) needs no code, a success needs both code and state.
// Other parameters (session_state and the like) are ignored.
func ParseSSOCallback(rawQuery string) (SSOCallback, error) {
	bad := func(format string, args ...any) (SSOCallback, error) {
		return SSOCallback{}, fmt.Errorf("%w: sign-in callback: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(rawQuery) > maxCallbackQuery {
		return bad("query longer than %d bytes", maxCallbackQuery)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return bad("malformed query")
	}
	var cb SSOCallback
	for _, p := range []struct {
		name string
		max  int
		dst  *string
	}{{"code", maxCallbackCode, &cb.Code}, {"state", maxCallbackState, &cb.State}, {"error", maxCallbackError, &cb.Error},
		{"error_description", maxCallbackDesc * 4, &cb.ErrorDescription}, {"iss", 2048, &cb.Issuer}} {
		vs := q[p.name]
		switch {
		case len(vs) == 0:
			continue
		case len(vs) > 1:
			return bad("%s given %d times", p.name, len(vs))
		case len(vs[0]) > p.max:
			return bad("%s longer than %d bytes", p.name, p.max)
		case p.name == "error_description":
			*p.dst = cleanDescription(vs[0])
		case vs[0] == "" || !utf8.ValidString(vs[0]) || termsafe.IndexEscaped(vs[0]) >= 0 || strings.ContainsAny(vs[0], " \t"):
			return bad("%s is empty or not printable", p.name)
		default:
			*p.dst = vs[0]
		}
	}
	switch {
	case cb.Error != "":
		cb.Code = ""
	case cb.Code == "" || cb.State == "":
		return bad("code and state are required")
	}
	return cb, nil
}

// cleanDescription keeps a provider's error description showable: valid
// UTF-8, no control or formatting characters, bounded.
func cleanDescription(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if termsafe.Escaped(r) {
			return ' '
		}
		return r
	}, s)
	return termsafe.Clip(strings.TrimSpace(s), maxCallbackDesc)
}
