package ops

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/collectorhq/collector/collector/config"
)

// Redacted replaces what the host-side redaction removes.
const Redacted = "[REDACTED]"

// Redactor removes, from what the operator commands show or bundle, every
// secret the host knows: the lines and bytes of the collector's private
// keys, every string of its config but the few the commands report on
// purpose (deny by default: a field added later is secret until said
// otherwise), credentials in URLs, and anything shaped like the
// platform's tokens or a JWT. The logs of jobs are redacted of the
// job's own secrets by the runner, which alone knows them; this is a
// second pass.
type Redactor struct {
	values []string // longest first
}

// Patterns of secrets the host cannot list: the platform's tokens
// (enrollment, access, metrics, API), JWTs, a URL's user info, PEM blocks.
var secretPatterns = []*regexp.Regexp{
	regexp.MustCompile(`\bc[a-z]{3}_[A-Za-z0-9_-]{20,}`),
	regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`),
	regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`),
}

var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@"']+@`)

// publicConfigFields are the config fields the commands show: who the
// collector is, where its platform is, the pin, where things are.
var publicConfigFields = map[string]bool{
	"collector_id": true, "platform_url": true, "ca_pin": true, "audience": true, "enrolled_at": true, "image": true,
	"dir": true, "state_dir": true, "kind": true, "socket": true, "secret_dir": true, "network": true, "job_network": true,
	"supervisor": true, "selinux_type": true, "insecure_registries": true,
}

// NewRedactor gathers the secrets of the config dir.
func NewRedactor(dir string) *Redactor {
	r := &Redactor{}
	for _, f := range []string{config.IdentityFile, config.HPKEFile} {
		// With the keys of a rotation in progress or just done.
		for _, suffix := range []string{"", config.NextSuffix, config.PreviousSuffix} {
			if b, err := os.ReadFile(filepath.Join(dir, f+suffix)); err == nil {
				r.addKey(b)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, config.ConfigFile)); err == nil {
		var v any
		if json.Unmarshal(b, &v) == nil {
			r.addConfig("", v)
		}
	}
	r.sort()
	return r
}

// Add adds values to redact (4 bytes or more; shorter ones cannot be told
// from ordinary text).
func (r *Redactor) Add(values ...string) {
	for _, v := range values {
		if len(v) >= 4 {
			r.values = append(r.values, v)
		}
	}
	r.sort()
}

func (r *Redactor) sort() {
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	r.values = slices.Compact(r.values)
}

// addKey adds a PEM key: the whole of it, each line of its body, and the
// key bytes in the encodings a program might print them in.
func (r *Redactor) addKey(pemData []byte) {
	r.values = append(r.values, strings.TrimSpace(string(pemData)))
	var body strings.Builder
	for _, l := range strings.Split(string(pemData), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "-----") {
			continue
		}
		if len(l) >= 8 {
			r.values = append(r.values, l)
		}
		body.WriteString(l)
	}
	if raw, err := base64.StdEncoding.DecodeString(body.String()); err == nil && len(raw) >= 16 {
		r.values = append(r.values, body.String(), base64.RawStdEncoding.EncodeToString(raw),
			base64.URLEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw), hexString(raw))
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&0xf])
	}
	return string(out)
}

// addConfig adds every string and number of the config but the public
// fields' (and the public fields' URL credentials).
func (r *Redactor) addConfig(key string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			r.addConfig(k, x)
		}
	case []any:
		for _, x := range v {
			r.addConfig(key, x)
		}
	case string:
		if !publicConfigFields[key] {
			r.Add(v)
			return
		}
		if m := urlUserinfo.FindStringSubmatch(v); m != nil {
			r.Add(strings.TrimSuffix(strings.TrimPrefix(m[0], m[1]), "@"))
		}
	case json.Number, float64:
		if !publicConfigFields[key] {
			b, _ := json.Marshal(v)
			if len(b) >= 6 {
				r.Add(string(b))
			}
		}
	}
}

// String returns s redacted.
func (r *Redactor) String(s string) string {
	for _, p := range secretPatterns {
		s = p.ReplaceAllString(s, Redacted)
	}
	s = urlUserinfo.ReplaceAllString(s, "${1}"+Redacted+"@")
	for _, v := range r.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}

// Bytes returns b redacted.
func (r *Redactor) Bytes(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	return []byte(r.String(string(b)))
}

// lineWriter redacts what is written to it line by line (a secret is
// looked for within a line: the logs' secrets are single-line values).
type lineWriter struct {
	w   interface{ Write([]byte) (int, error) }
	r   *Redactor
	buf bytes.Buffer
	esc func(string) string
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			if l.buf.Len() > 64<<10 {
				l.emit(l.buf.String())
				l.buf.Reset()
			}
			return len(p), nil
		}
		line := string(l.buf.Next(i + 1))
		if err := l.emit(line); err != nil {
			return len(p), err
		}
	}
}

func (l *lineWriter) emit(s string) error {
	out := l.r.String(s)
	if l.esc != nil {
		nl := strings.HasSuffix(out, "\n")
		out = l.esc(strings.TrimSuffix(out, "\n"))
		if nl {
			out += "\n"
		}
	}
	_, err := l.w.Write([]byte(out))
	return err
}

// Flush writes what is left of a last line without a newline.
func (l *lineWriter) Flush() error {
	if l.buf.Len() == 0 {
		return nil
	}
	s := l.buf.String()
	l.buf.Reset()
	return l.emit(s)
}
