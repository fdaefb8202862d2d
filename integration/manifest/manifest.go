package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Label is the image label holding the manifest as one JSON object.
const Label = "io.collectorhq.integration.manifest"

// ConfigSchemaLabel is the older label holding only the config's JSON
// Schema (api.ConfigSchemaLabel); images built by collector-release carry
// both, with the same schema.
const ConfigSchemaLabel = "io.collectorhq.integration.config-schema"

// Version is the manifest format this package reads and writes.
const Version = 1

// Bounds of a manifest.
const (
	// MaxSize bounds the manifest document, schema included.
	MaxSize = 128 << 10
	// MaxSchemaSize bounds the config schema (the platform's bound).
	MaxSchemaSize = 64 << 10
	maxName       = 63
	maxVersion    = 64
	maxText       = 1024
)

// ErrInvalid: the manifest is not one Collector can use; the error names
// the field.
var ErrInvalid = errors.New("invalid integration manifest")

// NetworkAccess says what network an integration needs.
type NetworkAccess string

// The network accesses.
const (
	// NetworkNone: the integration reaches nothing; it may run with the
	// network "none".
	NetworkNone NetworkAccess = "none"
	// NetworkOutbound: it opens connections to the targets its config
	// names (the job runs on the collector's job network).
	NetworkOutbound NetworkAccess = "outbound"
)

// Manifest is a checked manifest.
type Manifest struct {
	// Name is the integration's name: lower-case letters, digits and '-'.
	Name        string
	Version     string
	Description string
	// ConfigSchema is the JSON Schema (draft 2020-12) of the config,
	// compact, or nil when the manifest declares none.
	ConfigSchema json.RawMessage
	// SecretFields are the top-level config properties marked
	// "writeOnly": true, sorted.
	SecretFields []string
	Resources    Resources
	Network      Network
	Validation   Validation

	schema *compiledSchema
}

// Resources are what one run needs; a zero field leaves the collector's
// default.
type Resources struct {
	MemoryBytes int64
	CPUs        float64
	Pids        int64
	Timeout     time.Duration
}

// Network is the network an integration needs.
type Network struct {
	Access      NetworkAccess
	Description string
	// Proxy asks for the collector's proxy, if it has one: the job then
	// finds it at egressconf.JobPath, and the SDK's Main routes
	// net/http's default transport through it. Outbound access only.
	Proxy bool
}

// Validation says whether the integration has a validate mode, and how
// long a validation may take.
type Validation struct {
	Supported bool
	Timeout   time.Duration
}

// DefaultValidationTimeout bounds a validation whose manifest sets none;
// MaxValidationTimeout is the most validation.timeout may ask.
const (
	DefaultValidationTimeout = time.Minute
	MaxValidationTimeout     = 10 * time.Minute
)

// wire is the document's form, in YAML and in the label.
type wire struct {
	ManifestVersion int             `json:"manifest_version"`
	Name            string          `json:"name"`
	Version         string          `json:"version"`
	Description     string          `json:"description,omitempty"`
	ConfigSchema    json.RawMessage `json:"config_schema,omitempty"`
	Resources       *wireResources  `json:"resources,omitempty"`
	Network         *wireNetwork    `json:"network,omitempty"`
	Validation      *wireValidation `json:"validation,omitempty"`
}

type wireResources struct {
	Memory  string   `json:"memory,omitempty"`
	CPUs    *float64 `json:"cpus,omitempty"`
	Pids    *int64   `json:"pids,omitempty"`
	Timeout string   `json:"timeout,omitempty"`
}

type wireNetwork struct {
	Access      string `json:"access"`
	Description string `json:"description,omitempty"`
	Proxy       bool   `json:"proxy,omitempty"`
}

type wireValidation struct {
	Supported bool   `json:"supported"`
	Timeout   string `json:"timeout,omitempty"`
}

// Parse reads a manifest from its label: one JSON object, at most MaxSize
// bytes, with the config schema inline. Every field is checked; the error
// wraps ErrInvalid and names the field.
func Parse(doc []byte) (*Manifest, error) {
	if len(doc) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(doc), MaxSize)
	}
	var w wire
	if err := strictJSON(doc, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(w.ConfigSchema) > 0 && w.ConfigSchema[0] == '"' {
		return nil, fmt.Errorf("%w: config_schema: a file name is resolved when the image is built; a label carries the schema itself", ErrInvalid)
	}
	m, err := w.check()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return m, nil
}

// strictJSON decodes one JSON value into v, refusing unknown fields,
// duplicate names and trailing data.
func strictJSON(doc []byte, v any) error {
	if !json.Valid(doc) {
		var x any
		err := json.Unmarshal(doc, &x)
		return fmt.Errorf("not JSON: %v", err)
	}
	if err := noDuplicateNames(doc); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}

// Label returns the manifest as its label's value: compact JSON.
func (m *Manifest) Label() string {
	w := wire{ManifestVersion: Version, Name: m.Name, Version: m.Version, Description: m.Description, ConfigSchema: m.ConfigSchema}
	r := m.Resources
	if r != (Resources{}) {
		w.Resources = &wireResources{Timeout: durationText(r.Timeout)}
		if r.MemoryBytes > 0 {
			w.Resources.Memory = strconv.FormatInt(r.MemoryBytes, 10)
		}
		if r.CPUs > 0 {
			w.Resources.CPUs = &r.CPUs
		}
		if r.Pids > 0 {
			w.Resources.Pids = &r.Pids
		}
	}
	if m.Network.Access != "" {
		w.Network = &wireNetwork{Access: string(m.Network.Access), Description: m.Network.Description, Proxy: m.Network.Proxy}
	}
	if m.Validation.Supported {
		w.Validation = &wireValidation{Supported: true, Timeout: durationText(m.Validation.Timeout)}
	}
	b, err := json.Marshal(w)
	if err != nil {
		panic(err) // only strings, numbers and a compact JSON object
	}
	return string(b)
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// check turns the document into a Manifest, naming the first bad field.
func (w *wire) check() (*Manifest, error) {
	switch {
	case w.ManifestVersion == 0:
		return nil, errors.New("manifest_version: missing (want 1)")
	case w.ManifestVersion > Version:
		return nil, fmt.Errorf("manifest_version: %d is newer than this Collector reads (%d): upgrade it", w.ManifestVersion, Version)
	case w.ManifestVersion < 0:
		return nil, fmt.Errorf("manifest_version: %d: want 1", w.ManifestVersion)
	case len(w.Name) > maxName || !namePattern.MatchString(w.Name):
		return nil, fmt.Errorf("name: %q: want 1 to %d lower-case letters, digits and inner '-'", w.Name, maxName)
	case w.Version == "" || len(w.Version) > maxVersion || !printable(w.Version) || strings.ContainsAny(w.Version, " \t"):
		return nil, fmt.Errorf("version: %q: want 1 to %d printable characters without spaces", w.Version, maxVersion)
	case len(w.Description) > maxText || !printable(strings.ReplaceAll(w.Description, "\n", " ")):
		return nil, fmt.Errorf("description: want at most %d printable characters", maxText)
	}
	m := &Manifest{Name: w.Name, Version: w.Version, Description: w.Description}
	if err := m.setSchema(w.ConfigSchema); err != nil {
		return nil, err
	}
	var err error
	if m.Resources, err = w.Resources.check(); err != nil {
		return nil, err
	}
	if m.Network, err = w.Network.check(); err != nil {
		return nil, err
	}
	if m.Validation, err = w.Validation.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// printable: no control characters (a manifest is shown to people).
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' || r == 0xfffd {
			return false
		}
	}
	return true
}

// setSchema compiles the config schema and reads its secret fields.
func (m *Manifest) setSchema(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return fmt.Errorf("config_schema: %v", err)
	}
	if buf.Len() > MaxSchemaSize {
		return fmt.Errorf("config_schema: %d bytes, more than %d", buf.Len(), MaxSchemaSize)
	}
	sc, err := compileSchema(buf.Bytes())
	if err != nil {
		return fmt.Errorf("config_schema: %v", err)
	}
	m.ConfigSchema, m.schema, m.SecretFields = buf.Bytes(), sc, sc.secrets
	return nil
}

// Bounds of the resources a manifest may ask for.
const (
	minMemory  = 4 << 20
	maxMemory  = 1 << 40
	maxCPUs    = 1024
	maxPids    = 1 << 22
	maxTimeout = 7 * 24 * time.Hour
	maxValTime = MaxValidationTimeout
)

func (w *wireResources) check() (Resources, error) {
	var r Resources
	if w == nil {
		return r, nil
	}
	if w.Memory != "" {
		n, err := ParseBytes(w.Memory)
		if err != nil || n < minMemory || n > maxMemory {
			return r, fmt.Errorf("resources.memory: %q: want a size from 4Mi to 1Ti, such as 256Mi", w.Memory)
		}
		r.MemoryBytes = n
	}
	if w.CPUs != nil {
		if c := *w.CPUs; !(c > 0 && c <= maxCPUs) || math.IsNaN(c) {
			return r, fmt.Errorf("resources.cpus: %v: want more than 0, at most %d", c, maxCPUs)
		}
		r.CPUs = *w.CPUs
	}
	if w.Pids != nil {
		if p := *w.Pids; p < 1 || p > maxPids {
			return r, fmt.Errorf("resources.pids: %d: want 1 to %d", p, maxPids)
		}
		r.Pids = *w.Pids
	}
	var err error
	if r.Timeout, err = duration("resources.timeout", w.Timeout, maxTimeout); err != nil {
		return r, err
	}
	return r, nil
}

func (w *wireNetwork) check() (Network, error) {
	if w == nil {
		return Network{}, nil
	}
	switch a := NetworkAccess(w.Access); a {
	case NetworkNone, NetworkOutbound:
		if len(w.Description) > maxText || !printable(w.Description) {
			return Network{}, fmt.Errorf("network.description: want at most %d printable characters", maxText)
		}
		if w.Proxy && a != NetworkOutbound {
			return Network{}, fmt.Errorf("network.proxy: only with access %q", NetworkOutbound)
		}
		return Network{Access: a, Description: w.Description, Proxy: w.Proxy}, nil
	}
	return Network{}, fmt.Errorf("network.access: %q: want %q or %q", w.Access, NetworkNone, NetworkOutbound)
}

func (w *wireValidation) check() (Validation, error) {
	if w == nil {
		return Validation{}, nil
	}
	if !w.Supported {
		if w.Timeout != "" {
			return Validation{}, errors.New("validation.timeout: set, but validation.supported is false")
		}
		return Validation{}, nil
	}
	t, err := duration("validation.timeout", w.Timeout, maxValTime)
	if err != nil {
		return Validation{}, err
	}
	if t == 0 {
		t = DefaultValidationTimeout
	}
	return Validation{Supported: true, Timeout: t}, nil
}

func duration(field, s string, limit time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d > limit {
		return 0, fmt.Errorf("%s: %q: want a duration from 1s to %v, such as 30s or 10m", field, s, limit)
	}
	return d, nil
}

// ParseBytes reads a size: a number of bytes, or one with a binary suffix
// (Ki, Mi, Gi, Ti) or a decimal one (k, M, G, T).
func ParseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, optionally with Ki, Mi, Gi or Ti", s)
	}
	return n * mult, nil
}

// ValidateConfig checks a config against the manifest's schema (nothing
// when it has none). The error names the fields that are wrong and why,
// never a secret field's value.
func (m *Manifest) ValidateConfig(config []byte) error {
	if m.schema == nil {
		return nil
	}
	return m.schema.validate(config)
}

// IsSecret reports whether the top-level config field is secret.
func (m *Manifest) IsSecret(field string) bool { return slices.Contains(m.SecretFields, field) }
