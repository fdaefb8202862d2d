package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var english = message.NewPrinter(language.English)

// compiledSchema is a config schema ready to validate configs.
type compiledSchema struct {
	compiled *jsonschema.Schema
	secrets  []string
}

// compileSchema compiles a schema document with no loader: a $ref to
// anything outside it fails instead of being fetched.
func compileSchema(doc []byte) (*compiledSchema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("want a JSON object")
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	const loc = "urn:collector:config-schema"
	if err := c.AddResource(loc, v); err != nil {
		return nil, err
	}
	compiled, err := c.Compile(loc)
	if err != nil {
		return nil, err
	}
	return &compiledSchema{compiled: compiled, secrets: secretsOf(root)}, nil
}

// secretsOf lists the top-level properties marked writeOnly.
func secretsOf(root map[string]any) []string {
	props, _ := root["properties"].(map[string]any)
	var out []string
	for name, p := range props {
		if pm, ok := p.(map[string]any); ok && pm["writeOnly"] == true {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// validate checks a config; messages name fields, never a secret's value.
func (s *compiledSchema) validate(config []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(config))
	if err != nil {
		return fmt.Errorf("config is not JSON: %v", err)
	}
	var ve *jsonschema.ValidationError
	if err := s.compiled.Validate(v); !errors.As(err, &ve) {
		return err
	}
	var msgs []string
	leaves(ve, func(e *jsonschema.ValidationError) {
		where, what := "config", e.ErrorKind.LocalizedString(english)
		if loc := e.InstanceLocation; len(loc) > 0 {
			where = "config field " + strings.Join(loc, ".")
			if slices.Contains(s.secrets, loc[0]) {
				what = "does not satisfy the integration's schema (value hidden)"
			}
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

// noDuplicateNames refuses a JSON document in which an object gives a
// member name twice: decoders disagree on which one wins.
func noDuplicateNames(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type frame struct {
		obj   bool
		names map[string]bool
		key   bool // the next string token is a member name
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{obj: true, names: map[string]bool{}, key: true})
				continue
			case '[':
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].key = true
				}
				continue
			}
		case string:
			if top != nil && top.obj && top.key {
				if top.names[t] {
					return fmt.Errorf("member %q given twice", t)
				}
				top.names[t] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}
