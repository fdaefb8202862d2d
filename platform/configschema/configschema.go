// Package configschema reads the JSON Schema an integration declares for
// its config (the image label api.ConfigSchemaLabel): the platform
// validates configs against it when they are saved, and the console
// builds the config form from it.
//
// The schema comes from a signed image, but it is still data: it is
// bounded in size, compiled with no loader (a $ref to anything outside the
// document fails instead of fetching it), and validation messages never
// quote a secret field's value.
package configschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var english = message.NewPrinter(language.English)

// MaxSize bounds a schema document.
const MaxSize = 64 << 10

// ErrInvalid: the schema is not one the platform can use.
var ErrInvalid = errors.New("invalid config schema")

// Schema is a compiled config schema and the form it gives.
type Schema struct {
	raw      []byte
	compiled *jsonschema.Schema
	fields   []Field
	// simple: every top-level property is a form field (else the console
	// shows the JSON editor).
	simple bool
}

// Field is one input of the config form: a top-level property of a
// simple type.
type Field struct {
	Name        string
	Title       string
	Description string
	Type        string // string, integer, number, boolean
	Enum        []string
	Default     string
	Min, Max    *float64
	MaxLength   int
	Required    bool
	// Secret: "writeOnly": true. Its value is sealed like every secret
	// field's, and the form never shows it.
	Secret bool
}

// Parse compiles a schema document.
func Parse(doc []byte) (*Schema, error) {
	if len(doc) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(doc), MaxSize)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrInvalid, err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // nothing outside the document
	c.DefaultDraft(jsonschema.Draft2020)
	const loc = "urn:collector:config-schema"
	if err := c.AddResource(loc, v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	compiled, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	s := &Schema{raw: bytes.Clone(doc), compiled: compiled}
	s.fields, s.simple = formOf(v)
	return s, nil
}

// Raw is the document as declared.
func (s *Schema) Raw() []byte { return s.raw }

// Fields are the form's inputs, in a stable order (required first, then
// by name), and whether they cover the whole config.
func (s *Schema) Fields() ([]Field, bool) { return s.fields, s.simple }

// SecretFields are the properties marked writeOnly.
func (s *Schema) SecretFields() []string {
	var out []string
	for _, f := range s.fields {
		if f.Secret {
			out = append(out, f.Name)
		}
	}
	return out
}

// Validate checks a config. The error names the fields that are wrong
// and why, never a secret's value (secret lists the config's secret
// fields).
func (s *Schema) Validate(config []byte, secret []string) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(config))
	if err != nil {
		return fmt.Errorf("config is not JSON: %v", err)
	}
	err = s.compiled.Validate(v)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var msgs []string
	leaves(ve, func(e *jsonschema.ValidationError) {
		where := "config"
		if len(e.InstanceLocation) > 0 {
			where = "config field " + strings.Join(e.InstanceLocation, ".")
		}
		what := e.ErrorKind.LocalizedString(english)
		if len(e.InstanceLocation) > 0 && (slices.Contains(secret, e.InstanceLocation[0]) || slices.Contains(s.SecretFields(), e.InstanceLocation[0])) {
			what = describeHidden(e.ErrorKind)
		}
		msgs = append(msgs, where+": "+what)
	})
	sort.Strings(msgs)
	msgs = slices.Compact(msgs)
	if len(msgs) > 5 {
		msgs = append(msgs[:5], fmt.Sprintf("and %d more", len(msgs)-5))
	}
	return errors.New(strings.Join(msgs, "; "))
}

func leaves(e *jsonschema.ValidationError, f func(*jsonschema.ValidationError)) {
	if len(e.Causes) == 0 {
		f(e)
		return
	}
	for _, c := range e.Causes {
		leaves(c, f)
	}
}

// describeHidden says what is wrong with a secret's value without it.
func describeHidden(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return fmt.Sprintf("want %s (value hidden)", strings.Join(k.Want, " or "))
	case *kind.MaxLength:
		return fmt.Sprintf("longer than %d characters (value hidden)", k.Want)
	case *kind.MinLength:
		return fmt.Sprintf("shorter than %d characters (value hidden)", k.Want)
	}
	return "does not satisfy the integration's schema (value hidden)"
}

// formOf reads the form fields of a schema object.
func formOf(v any) ([]Field, bool) {
	root, ok := v.(map[string]any)
	if !ok || root["type"] != "object" {
		return nil, false
	}
	props, _ := root["properties"].(map[string]any)
	required := map[string]bool{}
	if rs, ok := root["required"].([]any); ok {
		for _, r := range rs {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	simple := true
	var fields []Field
	for name, pv := range props {
		p, ok := pv.(map[string]any)
		if !ok {
			simple = false
			continue
		}
		f := Field{Name: name, Required: required[name]}
		f.Title, _ = p["title"].(string)
		if f.Title == "" {
			f.Title = name
		}
		f.Description, _ = p["description"].(string)
		f.Type, _ = p["type"].(string)
		f.Secret, _ = p["writeOnly"].(bool)
		if d, ok := p["default"]; ok {
			if b, err := json.Marshal(d); err == nil {
				f.Default = strings.Trim(string(b), `"`)
			}
		}
		if en, ok := p["enum"].([]any); ok {
			for _, e := range en {
				s, ok := e.(string)
				if !ok {
					simple = false
				}
				f.Enum = append(f.Enum, s)
			}
		}
		if n, ok := p["minimum"].(json.Number); ok {
			x, _ := n.Float64()
			f.Min = &x
		}
		if n, ok := p["maximum"].(json.Number); ok {
			x, _ := n.Float64()
			f.Max = &x
		}
		if n, ok := p["maxLength"].(json.Number); ok {
			x, _ := n.Int64()
			f.MaxLength = int(x)
		}
		switch f.Type {
		case "string", "integer", "number", "boolean":
		default:
			simple = false
			continue
		}
		fields = append(fields, f)
	}
	sort.Slice(fields, func(i, j int) bool {
		if fields[i].Required != fields[j].Required {
			return fields[i].Required
		}
		return fields[i].Name < fields[j].Name
	})
	return fields, simple && len(fields) > 0
}

// FromForm builds a config from form values (name → text) for the fields;
// an empty value leaves the property out. Numbers and booleans are
// parsed; a bad one is an error naming the field.
func FromForm(fields []Field, get func(name string) (string, bool)) (map[string]json.RawMessage, error) {
	cfg := map[string]json.RawMessage{}
	for _, f := range fields {
		v, present := get(f.Name)
		if f.Type == "boolean" {
			if present && v != "" {
				cfg[f.Name] = json.RawMessage("true")
			} else {
				cfg[f.Name] = json.RawMessage("false")
			}
			continue
		}
		if v == "" {
			continue
		}
		switch f.Type {
		case "integer", "number":
			var n json.Number
			if err := json.Unmarshal([]byte(v), &n); err != nil || strings.ContainsAny(v, " \t\n") {
				return nil, fmt.Errorf("config field %s: want a number, not %q", f.Name, v)
			}
			cfg[f.Name] = json.RawMessage(n.String())
		default:
			b, _ := json.Marshal(v)
			cfg[f.Name] = b
		}
	}
	return cfg, nil
}
