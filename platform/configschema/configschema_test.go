package configschema_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/collectorhq/collector/platform/configschema"
)

func exampleSchema(t testing.TB) *configschema.Schema {
	t.Helper()
	doc, err := os.ReadFile("../../integrations/example/config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := configschema.Parse(doc)
	if err != nil {
		t.Fatalf("the example's schema: %v", err)
	}
	return s
}

func TestExampleSchemaGivesAForm(t *testing.T) {
	s := exampleSchema(t)
	fields, simple := s.Fields()
	if !simple {
		t.Fatal("the example's schema is all simple fields, but Fields says the form does not cover it")
	}
	byName := map[string]configschema.Field{}
	for _, f := range fields {
		byName[f.Name] = f
	}
	for name, typ := range map[string]string{"count": "integer", "relationships": "boolean", "prefix": "string", "token": "string", "sleep_seconds": "number", "fail": "boolean"} {
		if byName[name].Type != typ {
			t.Errorf("field %s = %+v, want type %s", name, byName[name], typ)
		}
	}
	if got := s.SecretFields(); len(got) != 1 || got[0] != "token" {
		t.Errorf("SecretFields = %v, want [token] (writeOnly)", got)
	}
	if f := byName["count"]; f.Min == nil || *f.Min != 0 || f.Default != "10" || f.Title != "Entities" {
		t.Errorf("count field = %+v", f)
	}
}

func TestValidateNamesFieldsAndHidesSecrets(t *testing.T) {
	s := exampleSchema(t)
	if err := s.Validate([]byte(`{"count": 3, "token": "t0ps3cret", "relationships": true}`), []string{"token"}); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	cases := []struct {
		config string
		want   []string
	}{
		{`{"count": -1}`, []string{"config field count", "minimum"}},
		{`{"count": "many"}`, []string{"config field count", "integer"}},
		{`{"colour": "blue"}`, []string{"colour"}},
		{`{"token": ` + strings.Repeat(`"x`, 1) + strings.Repeat("y", 5000) + `"}`, []string{"config field token", "value hidden"}},
		{`{"token": 12345678}`, []string{"config field token", "value hidden"}},
		{`[1, 2]`, []string{"config", "object"}},
		{`{`, []string{"not JSON"}},
	}
	for _, c := range cases {
		err := s.Validate([]byte(c.config), []string{"token"})
		if err == nil {
			t.Errorf("Validate(%.40s) = nil, want an error", c.config)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%.40s) = %q, want it to mention %q", c.config, err, w)
			}
		}
		if strings.Contains(err.Error(), "yyyyyyyy") || strings.Contains(err.Error(), "12345678") {
			t.Errorf("Validate(%.40s) quotes the secret's value: %q", c.config, err)
		}
	}
}

func TestParseRefusesWhatItCannotUse(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":     `{"type": `,
		"too large":    `{"description": "` + strings.Repeat("x", configschema.MaxSize) + `"}`,
		"remote ref":   `{"$ref": "http://127.0.0.1:1/schema.json"}`,
		"file ref":     `{"$ref": "file:///etc/passwd"}`,
		"bad keyword":  `{"type": 12}`,
		"trailing doc": `{} {}`,
	} {
		if _, err := configschema.Parse([]byte(doc)); !errors.Is(err, configschema.ErrInvalid) {
			t.Errorf("%s: Parse = %v, want ErrInvalid", name, err)
		}
	}
	// Not a simple object: parsed, but the console shows the JSON editor.
	s, err := configschema.Parse([]byte(`{"type": "object", "properties": {"hosts": {"type": "array", "items": {"type": "string"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, simple := s.Fields(); simple {
		t.Error("a schema with an array property is not a simple form")
	}
}

func TestFromForm(t *testing.T) {
	fields, _ := exampleSchema(t).Fields()
	form := map[string]string{"count": "12", "prefix": "a\"b", "relationships": "on", "sleep_seconds": ""}
	cfg, err := configschema.FromForm(fields, func(n string) (string, bool) { v, ok := form[n]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	if got := string(b); got != `{"count":12,"fail":false,"prefix":"a\"b","relationships":true,"stdout":false}` {
		t.Errorf("config = %s", got)
	}
	form["count"] = "12; drop"
	if _, err := configschema.FromForm(fields, func(n string) (string, bool) { v, ok := form[n]; return v, ok }); err == nil || !strings.Contains(err.Error(), "count") {
		t.Errorf("a bad number: %v", err)
	}
}

// The schema is data from an image: no document may crash Parse,
// Fields or Validate.
func FuzzSchema(f *testing.F) {
	doc, _ := os.ReadFile("../../integrations/example/config.schema.json")
	f.Add(doc, []byte(`{"count": 1}`))
	f.Add([]byte(`{"type":"object","properties":{"a":{"type":"string","pattern":"^a+$"}}}`), []byte(`{"a":"b"}`))
	f.Add([]byte(`{"$defs":{"x":{"$ref":"#/$defs/x"}},"$ref":"#/$defs/x"}`), []byte(`1`))
	f.Fuzz(func(t *testing.T, doc, config []byte) {
		s, err := configschema.Parse(doc)
		if err != nil {
			if !errors.Is(err, configschema.ErrInvalid) {
				t.Fatalf("Parse error %v is not ErrInvalid", err)
			}
			return
		}
		s.Fields()
		_ = s.Validate(config, s.SecretFields())
	})
}
