package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/termsafe"
)

// Token prefixes: they tell a person (or a secret scanner) what a token is.
const (
	EnrollmentTokenPrefix = "cenr_"
	AccessTokenPrefix     = "cacc_"
	MetricsTokenPrefix    = "cmet_"
)

// ErrInvalid is wrapped by every decoding and validation error.
var ErrInvalid = errors.New("invalid request")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Decode reads exactly one JSON value from r into v: unknown fields, wrong
// types and trailing data are errors wrapping ErrInvalid. The caller bounds
// r (the server uses http.MaxBytesReader); a *http.MaxBytesError is returned
// as is, so the caller can answer 413.
func Decode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		if err == nil {
			return invalidf("unexpected data after the JSON body")
		}
		return decodeError(err)
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalidf("empty body: a JSON object is required")
	case errors.As(err, &syn):
		return invalidf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return invalidf("field %q: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalidf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("truncated JSON")
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return err // the caller answers 413
	}
	return invalidf("%v", err)
}

// DecodeEnroll decodes and validates an enrollment request body.
func DecodeEnroll(r io.Reader) (EnrollRequest, error) {
	var req EnrollRequest
	if err := Decode(r, &req); err != nil {
		return req, err
	}
	return req, req.Validate()
}

// DecodeToken decodes and validates a token-exchange request body.
func DecodeToken(r io.Reader) (TokenRequest, error) {
	var req TokenRequest
	if err := Decode(r, &req); err != nil {
		return req, err
	}
	return req, req.Validate()
}

// DecodeHeartbeat decodes and validates a heartbeat body.
func DecodeHeartbeat(r io.Reader) (Heartbeat, error) {
	var hb Heartbeat
	if err := Decode(r, &hb); err != nil {
		return hb, err
	}
	return hb, hb.Validate()
}

// DecodeIntegration decodes and validates an integration-create body.
func DecodeIntegration(r io.Reader) (IntegrationRequest, error) {
	var req IntegrationRequest
	if err := Decode(r, &req); err != nil {
		return req, err
	}
	return req, req.Validate()
}

// DecodeIntegrationUpdate decodes and validates an integration-update body.
func DecodeIntegrationUpdate(r io.Reader) (IntegrationUpdate, error) {
	var req IntegrationUpdate
	if err := Decode(r, &req); err != nil {
		return req, err
	}
	return req, req.Validate()
}

var (
	idPattern   = regexp.MustCompile(`^(col|int)_[a-z2-7]{26}$`)
	poolPattern = bounded{regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`), 63}
	// An image reference: no spaces or control characters; the runner checks it fully.
	imagePattern = bounded{regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@+-]*$`), 255}
	tokenPattern = bounded{regexp.MustCompile(`^[A-Za-z0-9_-]+$`), 200}
	fieldPattern = bounded{regexp.MustCompile(`^[A-Za-z0-9_.-]+$`), 128}
)

// bounded is a pattern with a length bound checked apart: a counted
// repetition ({0,254}) compiles into that many copies of its class, which
// every process linking this package builds at start (about 0.9 MB).
type bounded struct {
	re  *regexp.Regexp
	max int
}

// MatchString says whether s is at most max bytes and matches.
func (b bounded) MatchString(s string) bool { return len(s) <= b.max && b.re.MatchString(s) }

// ValidCollectorID says whether s looks like a collector ID.
func ValidCollectorID(s string) bool { return idPattern.MatchString(s) && strings.HasPrefix(s, "col_") }

// ValidIntegrationID says whether s looks like an integration ID.
func ValidIntegrationID(s string) bool {
	return idPattern.MatchString(s) && strings.HasPrefix(s, "int_")
}

var jobIDPattern = regexp.MustCompile(`^job_[0-9a-f]{32}$`)

// ValidJobID says whether s looks like a job ID.
func ValidJobID(s string) bool { return jobIDPattern.MatchString(s) }

// Networks an integration may ask for.
var Networks = []string{"", "none", "host", "bridge"}

func validName(field, s string) error {
	if s == "" {
		return invalidf("%s is required", field)
	}
	if len(s) > 128 || !utf8.ValidString(s) {
		return invalidf("%s must be valid UTF-8 of at most 128 bytes", field)
	}
	if i := termsafe.IndexEscaped(s); i >= 0 {
		return invalidf("%s must not contain control or formatting characters (%s at byte %d)", field, runeName(s[i:]), i)
	}
	return nil
}

// printableLine checks a string a collector reports and an administrator
// reads: valid UTF-8 of at most max bytes, printable on one line
// (termsafe.Printable: no control characters, not even newline or tab, no
// bidirectional or other format characters that reorder or hide text).
func printableLine(field, s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) {
		return invalidf("%s must be valid UTF-8 of at most %d bytes", field, max)
	}
	if i := termsafe.IndexEscaped(s); i >= 0 {
		return invalidf("%s must be printable text on one line: %s at byte %d is a control or formatting character", field, runeName(s[i:]), i)
	}
	return nil
}

// runeName names the first character of s, valid UTF-8, for an error.
func runeName(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	return fmt.Sprintf("%U", r)
}

// Validate checks a collector-create request.
func (r CreateCollectorRequest) Validate() error {
	if err := validName("name", r.Name); err != nil {
		return err
	}
	return validPool(r.Pool)
}

// validPool: "" (none) or a pool name.
func validPool(p string) error {
	if p != "" && !poolPattern.MatchString(p) {
		return invalidf("pool must be 1-63 of a-z 0-9 . _ - starting with a letter or digit")
	}
	return nil
}

// Validate checks a set-pool request.
func (r SetPoolRequest) Validate() error { return validPool(r.Pool) }

// Validate checks the shape of an enrollment request (not the token's validity).
func (r EnrollRequest) Validate() error {
	switch {
	case !ValidCollectorID(r.CollectorID):
		return invalidf("collector_id is missing or malformed")
	case !strings.HasPrefix(r.Token, EnrollmentTokenPrefix) || !tokenPattern.MatchString(r.Token):
		return invalidf("token is missing or malformed (want %s...)", EnrollmentTokenPrefix)
	case len(r.IdentityPublicKey) != ed25519.PublicKeySize:
		return invalidf("identity_public_key must be a base64 Ed25519 public key (%d bytes), got %d bytes",
			ed25519.PublicKeySize, len(r.IdentityPublicKey))
	}
	if err := crypto.ValidateHPKEPublicKey(r.HPKEPublicKey); err != nil {
		return invalidf("hpke_public_key: %v", err)
	}
	return nil
}

// Validate checks a token-exchange request.
func (r TokenRequest) Validate() error {
	if r.Assertion == "" || len(r.Assertion) > crypto.MaxAssertionSize {
		return invalidf("assertion is required (at most %d bytes)", crypto.MaxAssertionSize)
	}
	return nil
}

// Validate checks a heartbeat. Its strings are shown to administrators
// (collectors show): each must be printable text on one line.
// MaxClockOffsetMs bounds the clock offset a heartbeat may report.
const MaxClockOffsetMs = 365 * 24 * 3600 * 1000

func (h Heartbeat) Validate() error {
	for _, f := range []struct {
		name string
		s    string
		max  int
	}{
		{"version", h.Version, 128}, {"engine.kind", h.Engine.Kind, 128}, {"engine.version", h.Engine.Version, 128},
		{"runner_state", h.RunnerState, 128}, {"engine_error", h.EngineError, 512}, {"runner_health", h.RunnerHealth, 64},
	} {
		if err := printableLine(f.name, f.s, f.max); err != nil {
			return err
		}
	}
	switch {
	case h.Capacity.CPUs < 0 || h.Capacity.MemoryTotalBytes < 0 || h.Capacity.MemoryFreeBytes < 0:
		return invalidf("capacity values must not be negative")
	case h.RunningJobs < 0:
		return invalidf("running_jobs must not be negative")
	case h.ClockOffsetMs > MaxClockOffsetMs || h.ClockOffsetMs < -MaxClockOffsetMs:
		return invalidf("clock_offset_ms: at most %d (a year) either way", int64(MaxClockOffsetMs))
	case h.Storage != nil && (h.Storage.TotalBytes < 0 || h.Storage.UsedBytes < 0 || h.Storage.UsedBytes > h.Storage.TotalBytes):
		return invalidf("storage: used_bytes must be between 0 and total_bytes")
	case h.Image != "" && !ValidDigestRef(h.Image):
		return invalidf("image must be an image reference by digest")
	}
	return h.Upgrade.Validate()
}

// MaxIntervalSec bounds an integration's interval (30 days).
const MaxIntervalSec = 30 * 24 * 3600

// Validate checks an integration-create request.
func (r IntegrationRequest) Validate() error {
	if err := validName("name", r.Name); err != nil {
		return err
	}
	if !imagePattern.MatchString(r.Image) {
		return invalidf("image must be an image reference (registry/repo:tag or @digest)")
	}
	if r.IntervalSec < 60 || r.IntervalSec > MaxIntervalSec {
		return invalidf("interval_sec must be between 60 and %d", MaxIntervalSec)
	}
	if r.CollectorID != "" && !ValidCollectorID(r.CollectorID) {
		return invalidf("collector_id is malformed")
	}
	if err := validPool(r.Pool); err != nil {
		return err
	}
	if r.CollectorID != "" && r.Pool != "" {
		return invalidf("give collector_id or pool, not both")
	}
	if err := validNetwork(r.Network); err != nil {
		return err
	}
	obj, err := ConfigObject(r.Config)
	if err != nil {
		return err
	}
	return validSecretFields(r.SecretFields, obj)
}

// Validate checks an integration update.
func (r IntegrationUpdate) Validate() error {
	if r.Name != nil {
		if err := validName("name", *r.Name); err != nil {
			return err
		}
	}
	if r.Image != nil && !imagePattern.MatchString(*r.Image) {
		return invalidf("image must be an image reference (registry/repo:tag or @digest)")
	}
	if r.IntervalSec != nil && (*r.IntervalSec < 60 || *r.IntervalSec > MaxIntervalSec) {
		return invalidf("interval_sec must be between 60 and %d", MaxIntervalSec)
	}
	if r.Network != nil {
		if err := validNetwork(*r.Network); err != nil {
			return err
		}
	}
	if r.Config != nil {
		if _, err := ConfigObject(r.Config); err != nil {
			return err
		}
	}
	if r.SecretFields != nil {
		return validSecretFields(*r.SecretFields, nil)
	}
	return nil
}

// Validate checks an assign request.
func (r AssignRequest) Validate() error {
	switch {
	case r.CollectorID != "" && r.Pool != "":
		return invalidf("give collector_id or pool, not both")
	case r.Pool != "":
		return validPool(r.Pool)
	case !ValidCollectorID(r.CollectorID):
		return invalidf("collector_id (or pool) is missing or malformed")
	}
	return nil
}

func validNetwork(n string) error {
	for _, ok := range Networks {
		if n == ok {
			return nil
		}
	}
	return invalidf("network must be one of none, host, bridge (or empty for the default)")
}

// ConfigObject parses an integration config, which must be a JSON object.
func ConfigObject(raw json.RawMessage) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, invalidf("config must be a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, invalidf("config must be a JSON object: %v", err)
	}
	return obj, nil
}

// validSecretFields checks the names and, when obj is given, that each names
// a top-level key of the config.
func validSecretFields(fields []string, obj map[string]json.RawMessage) error {
	seen := map[string]bool{}
	for _, f := range fields {
		if !fieldPattern.MatchString(f) {
			return invalidf("secret_fields: %q is not a valid config key name", f)
		}
		if seen[f] {
			return invalidf("secret_fields: %q is listed twice", f)
		}
		seen[f] = true
		if obj != nil {
			if _, ok := obj[f]; !ok {
				return invalidf("secret_fields: %q is not a top-level key of config", f)
			}
		}
	}
	return nil
}
