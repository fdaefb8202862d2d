package runner

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/egressconf"
)

// redactedMark replaces every secret in what the runner uploads.
const redactedMark = "[REDACTED]"

// Bounds of what redaction derives from a config.
const (
	// minSecret is the shortest value redacted: a shorter one cannot be
	// told from ordinary text, and marking it everywhere would leave the
	// logs and errors unreadable (a field that short is no secret).
	minSecret = 4
	// minSecretLine is the shortest line of a multi-line secret redacted on
	// its own (shorter ones would blank common text).
	minSecretLine = 8
	// minBase64Inner is the shortest base64 run, derived from a secret
	// inside a longer base64 string, that is redacted: shorter runs would
	// blank unrelated text, so short secrets get their "field:secret"
	// pairs instead.
	minBase64Inner = 6
	// maxPairFields and maxPairValue bound the "field:secret" pairs (HTTP
	// Basic credentials) built for short secrets.
	maxPairFields = 32
	maxPairValue  = 256
)

// redactor removes every form a program commonly prints of a job's secret
// config values from text: the value itself, JSON-escaped (by encoding/json,
// log/slog, and ASCII-only encoders), Go-quoted, URL-escaped (query, path,
// user info), base64 (standard and URL alphabets, with or without padding,
// alone or inside a longer base64 string such as HTTP Basic credentials),
// and each long line of a multi-line value.
type redactor struct {
	forms []string // longest first
}

// redactorFor builds the redactor of a job's config and of the
// collector's proxy password, if any (the job may have been given it).
func redactorFor(job *crypto.Job, eg *egressconf.Job) (*redactor, error) {
	secrets, fields, err := secretValues(job)
	if err != nil {
		return nil, err
	}
	if eg != nil {
		if p := eg.Password(); p != "" {
			secrets = append(secrets, p)
		}
	}
	return newRedactor(secrets, fields), nil
}

// secretValues returns the values of the config's secret fields (every
// string and number inside each), and
// the config's top-level string values, which may pair with a secret (a
// user name with its password).
func secretValues(job *crypto.Job) (secrets, fields []string, err error) {
	if len(job.SecretFields) == 0 {
		return nil, nil, nil
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(job.Config, &cfg); err != nil {
		return nil, nil, fmt.Errorf("job config is not a JSON object: %w", err)
	}
	for _, f := range job.SecretFields {
		raw, ok := cfg[f]
		if !ok {
			continue
		}
		// Numbers as written: a float64 prints 12345678 as 1.2345678e+07,
		// which is not what a program logs.
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("job config field %q: %w", f, err)
		}
		secrets = appendLeaves(secrets, v)
	}
	for _, raw := range cfg {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			fields = append(fields, s)
		}
	}
	return secrets, fields, nil
}

// appendLeaves adds every string and number inside v (a boolean is no
// secret).
func appendLeaves(out []string, v any) []string {
	switch t := v.(type) {
	case string:
		out = append(out, t)
	case map[string]any:
		for _, e := range t {
			out = appendLeaves(out, e)
		}
	case []any:
		for _, e := range t {
			out = appendLeaves(out, e)
		}
	case json.Number:
		// As written, and as Go's strconv prints it ('f', shortest): a
		// program logs 1.2e7 as 12000000.
		out = append(out, t.String())
		if f, err := t.Float64(); err == nil {
			out = append(out, strconv.FormatFloat(f, 'f', -1, 64))
		}
	}
	return out
}

// newRedactor derives every form of secrets; fields are the config's
// string values that may precede a secret in "field:secret" credentials.
func newRedactor(secrets, fields []string) *redactor {
	set := map[string]bool{}
	for _, s := range secrets {
		for _, f := range secretForms(s, fields) {
			set[f] = true
		}
	}
	delete(set, "")
	forms := slices.Collect(maps.Keys(set))
	slices.SortFunc(forms, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	return &redactor{forms: forms}
}

// secretForms are the forms of one secret value (none for a value too
// short to tell from text), with each long line of a multi-line value,
// and the "field:secret" pairs of a short one.
func secretForms(s string, fields []string) []string {
	if len(s) < minSecret {
		return nil
	}
	forms := textForms(s)
	b64, short := base64Forms(s)
	forms = append(forms, b64...)
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); len(line) >= minSecretLine && line != s {
			forms = append(forms, textForms(line)...)
		}
	}
	if short && len(s) <= maxPairValue {
		forms = append(forms, pairForms(s, fields)...)
	}
	return forms
}

// textForms are s as printed in text: plain, JSON-escaped, quoted, URL-escaped.
func textForms(s string) []string {
	forms := []string{
		s,
		jsonBody(s, true),
		jsonBody(s, false),
		slogBody(s),
		asciiJSONBody(s),
		quotedBody(strconv.Quote(s)),
		quotedBody(strconv.QuoteToASCII(s)),
		url.QueryEscape(s),
		url.PathEscape(s),
	}
	for _, inner := range []string{jsonBody(s, true), jsonBody(s, false)} {
		forms = append(forms, jsonBody(inner, true), slogBody(inner)) // JSON inside a JSON string
	}
	if ui := url.UserPassword("", s).String(); len(ui) > 1 {
		forms = append(forms, ui[1:]) // the password as a URL's user info escapes it
	}
	return forms
}

// base64Forms are s encoded whole (the padded forms begin with the raw
// ones) and the runs of any longer encoding that only s determines, for
// each of the three alignments s may have inside the encoded string;
// short reports that some alignment's run is too short to redact.
func base64Forms(s string) (forms []string, short bool) {
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		forms = append(forms, enc.EncodeToString([]byte(s)))
		for shift := range 3 {
			in := base64Inner(s, shift, enc)
			if len(in) < minBase64Inner {
				short = true
				continue
			}
			forms = append(forms, in)
		}
	}
	return forms, short
}

// base64Inner encodes s after shift other bytes and keeps the characters
// whose six bits all come from s: the run that appears in the encoding of
// any string holding s at an offset of shift modulo 3.
func base64Inner(s string, shift int, enc *base64.Encoding) string {
	b := append(make([]byte, shift), s...)
	full := enc.EncodeToString(b)
	first := (8*shift + 5) / 6       // the first character starting at or after s
	last := 8 * (shift + len(s)) / 6 // characters before this one end within s
	if last <= first || last > len(full) {
		return ""
	}
	return full[first:last]
}

// pairForms are the base64 encodings of "field:secret" for each field:
// HTTP Basic credentials of a short password, whose own run is too short
// to redact alone.
func pairForms(secret string, fields []string) []string {
	var forms []string
	for i, f := range fields {
		if i == maxPairFields {
			break
		}
		if len(f) > maxPairValue || f == secret {
			continue
		}
		pair := []byte(f + ":" + secret)
		forms = append(forms, base64.RawStdEncoding.EncodeToString(pair), base64.RawURLEncoding.EncodeToString(pair))
	}
	return forms
}

// jsonBody is s as encoding/json writes it, without the quotes.
func jsonBody(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	enc.Encode(s)
	return quotedBody(strings.TrimSuffix(b.String(), "\n"))
}

// slogBody is s as log/slog's JSON handler writes it (it escapes neither
// &, < nor >, and writes \b and \f as \u0008 and \u000c), without the quotes.
func slogBody(s string) string {
	var b bytes.Buffer
	drop := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key != "v" {
			return slog.Attr{}
		}
		return a
	}
	slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: drop})).Info("", "v", s)
	out := strings.TrimSuffix(b.String(), "\n")
	if !strings.HasPrefix(out, `{"v":"`) || !strings.HasSuffix(out, `"}`) {
		return ""
	}
	return out[len(`{"v":"`) : len(out)-len(`"}`)]
}

// asciiJSONBody is s as ASCII-only JSON encoders (Python's json.dumps by
// default) write it: every non-ASCII rune as \uXXXX, in UTF-16.
func asciiJSONBody(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case r < utf8.RuneSelf:
			body := jsonBody(string(r), false)
			b.WriteString(body)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// quotedBody strips the quotes around q.
func quotedBody(q string) string {
	if len(q) < 2 {
		return ""
	}
	return q[1 : len(q)-1]
}

// longest is the length of the longest form.
func (r *redactor) longest() int {
	if r == nil || len(r.forms) == 0 {
		return 0
	}
	return len(r.forms[0])
}

// redact replaces every occurrence of every form in s; overlapping
// occurrences (one secret a prefix of another, or two secrets side by
// side) merge into one mark, so no tail of a longer secret is left.
func (r *redactor) redact(s string) string {
	if r.longest() == 0 {
		return s
	}
	return string(markSpans(nil, []byte(s), r.spans([]byte(s)), len(s)))
}

// spans returns where the forms occur in b, merged where they overlap or
// touch, in order.
func (r *redactor) spans(b []byte) [][2]int {
	if r == nil {
		return nil
	}
	var spans [][2]int
	for _, f := range r.forms {
		for i := 0; i < len(b); {
			k := bytes.Index(b[i:], []byte(f))
			if k < 0 {
				break
			}
			spans = append(spans, [2]int{i + k, i + k + len(f)})
			i += k + 1
		}
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return cmp.Compare(a[0], b[0]) })
	merged := spans[:0]
	for _, sp := range spans {
		if n := len(merged); n > 0 && sp[0] <= merged[n-1][1] {
			merged[n-1][1] = max(merged[n-1][1], sp[1])
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// markSpans appends b[:upto] to dst with each span replaced by the mark;
// no span may straddle upto.
func markSpans(dst, b []byte, spans [][2]int, upto int) []byte {
	at := 0
	for _, sp := range spans {
		if sp[0] >= upto {
			break
		}
		dst = append(dst, b[at:sp[0]]...)
		dst = append(dst, redactedMark...)
		at = sp[1]
	}
	return append(dst, b[at:upto]...)
}

// maxHeld bounds what a redacting reader holds back while a run of
// overlapping secrets goes on (only adversarial output does that).
const maxHeld = 256 << 10

// reader returns rd's bytes redacted as a stream: a secret is found
// wherever it is, across lines and across any later cut of a long line.
func (r *redactor) reader(rd io.Reader) io.Reader {
	if r.longest() == 0 {
		return rd
	}
	return &redactingReader{r: rd, red: r, chunk: make([]byte, 32<<10)}
}

// redactingReader redacts what it reads. It holds back the last bytes
// read until no form could start among them unseen: each pass finds every
// form starting before len(held)-longest+1, and releases the text up to
// that point (or up to the start of a secret that reaches past it).
type redactingReader struct {
	r     io.Reader
	red   *redactor
	chunk []byte
	held  []byte // read, not yet redacted
	out   []byte // redacted, not yet returned
	err   error
}

func (rr *redactingReader) Read(p []byte) (int, error) {
	for len(rr.out) == 0 {
		if rr.err != nil {
			return 0, rr.err
		}
		n, err := rr.r.Read(rr.chunk)
		rr.held = append(rr.held, rr.chunk[:n]...)
		rr.err = err
		rr.release(err != nil)
	}
	n := copy(p, rr.out)
	rr.out = rr.out[n:]
	return n, nil
}

// release moves the redacted text that is final from held to out.
func (rr *redactingReader) release(final bool) {
	spans := rr.red.spans(rr.held)
	upto := len(rr.held)
	if !final {
		upto -= rr.red.longest() - 1
	}
	for _, sp := range spans {
		if sp[0] < upto && upto < sp[1] {
			upto = sp[0] // a secret reaches past the point: keep it whole for the next pass
			if upto == 0 && len(rr.held) > maxHeld {
				upto = sp[1]
			}
			break
		}
	}
	if upto <= 0 {
		return
	}
	rr.out = markSpans(rr.out[:0], rr.held, spans, upto)
	rr.held = append(rr.held[:0], rr.held[upto:]...)
}
