package integration_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/collectorhq/collector/integration"
)

func TestParseRecordReasons(t *testing.T) {
	good := []struct {
		line string
		kind integration.Kind
		key  string
	}{
		{`{"entity":{"_key":"k1","_type":"user","_class":"User","name":"a"}}`, integration.KindEntity, "k1"},
		{` {"relationship":{"_key":"r","_type":"t","_class":"HAS","_fromEntityKey":"a","_toEntityKey":"b"}} `, integration.KindRelationship, "r"},
	}
	for _, g := range good {
		r, err := integration.ParseRecord([]byte(g.line))
		if err != nil || r.Kind != g.kind || r.Key != g.key {
			t.Errorf("ParseRecord(%s) = %+v, %v", g.line, r, err)
		}
	}
	bad := map[string]string{
		``:         "empty",
		`not json`: "want",
		`[]`:       "want",
		`{}`:       "want",
		`{"entity":{"_key":"k","_type":"t","_class":"c"},"relationship":{}}`: "got both",
		`{"thing":{}}`:                          "unknown member",
		`{"entity":[1]}`:                        "not a JSON object",
		`{"entity":"x"}`:                        "not a JSON object",
		`{"entity":{"_type":"t","_class":"c"}}`: "_key",
		`{"entity":{"_key":"","_type":"t","_class":"c"}}`:                                                                  "_key",
		`{"entity":{"_key":1,"_type":"t","_class":"c"}}`:                                                                   "must be a JSON string",
		`{"entity":{"_key":"k","_class":"c"}}`:                                                                             "_type",
		`{"entity":{"_key":"k","_type":"t"}}`:                                                                              "_class",
		`{"relationship":{"_key":"k","_type":"t","_class":"c","_toEntityKey":"b"}}`:                                        "_fromEntityKey",
		`{"relationship":{"_key":"k","_type":"t","_class":"c","_fromEntityKey":"a"}}`:                                      "_toEntityKey",
		`{"entity":{"_key":"k","_type":"t","_class":"c"}} {}`:                                                              "after the first JSON value",
		"{\"entity\":{\"_key\":\"\xff\",\"_type\":\"t\",\"_class\":\"c\"}}":                                                "UTF-8",
		`{"entity":{"_key":"` + strings.Repeat("k", 2000) + `","_type":"t","_class":"c"}}`:                                 "over 1024",
		`{"entity":{"_key":"a\u0000b","_type":"t","_class":"c"}}`:                                                          "NUL",
		`{"relationship":{"_key":"k","_type":"t","_class":"c","_fromEntityKey":"\u0000","_toEntityKey":"b"}}`:              "NUL",
		`{"entity":{"_key":"k","_type":"t","_class":"c","big":"` + strings.Repeat("x", integration.MaxRecordBytes) + `"}}`: "over the",
	}
	for line, want := range bad {
		_, err := integration.ParseRecord([]byte(line))
		if !errors.Is(err, integration.ErrInvalidRecord) || !strings.Contains(err.Error(), want) {
			short := line
			if len(short) > 80 {
				short = short[:80]
			}
			t.Errorf("ParseRecord(%s) = %v, want ErrRecord mentioning %q", short, err, want)
		}
		// The error becomes the job's error: text PostgreSQL can hold.
		if err != nil && (strings.ContainsRune(err.Error(), 0) || !utf8.ValidString(err.Error())) {
			t.Errorf("ParseRecord's error %q holds a NUL or invalid UTF-8", err)
		}
	}
}

// TestParseRecordOneKey: a record has one key. Member names match exactly,
// after unescaping, and appear once; a name that differs from a reserved
// one only in case is refused, not read as it (encoding/json would read
// {"_key":"victim","_KEY":"attacker"} as the key "attacker").
func TestParseRecordOneKey(t *testing.T) {
	const rest = `"_type":"t","_class":"c"`
	bad := map[string]string{
		`{"entity":{"_key":"victim","_KEY":"attacker",` + rest + `}}`:                        `"_KEY" differs from the reserved "_key" only in case`,
		`{"entity":{"_KEY":"attacker",` + rest + `}}`:                                        `"_KEY" differs from the reserved "_key" only in case`,
		`{"entity":{"_key":"k","_Type":"x",` + rest + `}}`:                                   `"_Type" differs from the reserved "_type" only in case`,
		`{"entity":{"_key":"k","_\u212aey":"x",` + rest + `}}`:                               `differs from the reserved "_key" only in case`, // KELVIN SIGN folds to k
		`{"relationship":{"_key":"k",` + rest + `,"_fromentitykey":"a","_toEntityKey":"b"}}`: `"_fromentitykey" differs`,
		`{"entity":{"_key":"a","_key":"b",` + rest + `}}`:                                    `duplicate member "_key"`,
		`{"entity":{"_key":"a","\u005fkey":"b",` + rest + `}}`:                               `duplicate member "_key"`,
		`{"entity":{"_key":"k",` + rest + `,"name":"a","name":"b"}}`:                         `duplicate member "name"`,
		`{"entity":{"_key":"k",` + rest + `,"n\u0061me":1,"name":2}}`:                        `duplicate member "name"`,
		`{"entity":{"_key":"k",` + rest + `},"entity":{"_key":"k",` + rest + `}}`:            `duplicate member "entity"`,
		`{"Entity":{"_key":"k",` + rest + `}}`:                                               `unknown member "Entity"`,
		`{"ENTITY":{"_key":"k",` + rest + `}}`:                                               "case-sensitive",
		`{"entity":{"_key":"k",` + rest + `},"Relationship":{}}`:                             `unknown member "Relationship"`,
		`{"entity":{"_key":null,` + rest + `}}`:                                              "_key must be a JSON string, got null",
		`{"entity":{"_key":["k"],` + rest + `}}`:                                             "_key must be a JSON string, got an array",
		`{"entity":{"_key":"k",` + rest + `,"_fromEntityKey":1}}`:                            "_fromEntityKey must be a JSON string, got a number",
	}
	for line, want := range bad {
		r, err := integration.ParseRecord([]byte(line))
		if !errors.Is(err, integration.ErrInvalidRecord) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRecord(%s) = %+v, %v; want ErrInvalidRecord mentioning %s", line, r, err, want)
		}
	}
	good := map[string]integration.Record{
		`{"entity":{"\u005fkey":"k",` + rest + `}}`:                                   {Key: "k"},
		`{"entity":{"_key":"k\u00e9",` + rest + `}}`:                                  {Key: "k\u00e9"},
		`{"entity":{"_key":"\ud800",` + rest + `}}`:                                   {Key: "\ufffd"}, // a lone surrogate reads as encoding/json reads it
		`{"entity":{"_key":"k",` + rest + `,"Name":1,"name":2,"NAME":3}}`:             {Key: "k"},      // properties differing in case are distinct
		`{"entity":{"_key":"k",` + rest + `,"_keys":"x","key":"y","_tag":"z"}}`:       {Key: "k"},
		`{"entity":{"_key":"k",` + rest + `,"_fromEntityKey":"","_toEntityKey":"x"}}`: {Key: "k"}, // an entity's endpoints are strings, ignored
	}
	for line, want := range good {
		r, err := integration.ParseRecord([]byte(line))
		if err != nil || r.Key != want.Key || r.Type != "t" || r.Class != "c" {
			t.Errorf("ParseRecord(%s) = %+v, %v; want key %q", line, r, err, want.Key)
		}
	}
}

// TestParseRecordManyMembers: duplicate detection stays correct (and
// linear) past the members a record usually has.
func TestParseRecordManyMembers(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"entity":{"_key":"k","_type":"t","_class":"c"`)
	for i := range 5000 {
		fmt.Fprintf(&b, `,"p%d":%d`, i, i)
	}
	line := b.String()
	if _, err := integration.ParseRecord([]byte(line + `}}`)); err != nil {
		t.Fatalf("5000 distinct properties: %v", err)
	}
	for _, dup := range []string{`"p0"`, `"p4999"`, `"_type"`} {
		if _, err := integration.ParseRecord([]byte(line + `,` + dup + `:1}}`)); !errors.Is(err, integration.ErrInvalidRecord) ||
			!strings.Contains(err.Error(), "duplicate member "+dup) {
			t.Errorf("5000 properties then %s again: %v", dup, err)
		}
	}
}

func FuzzParseRecordFields(f *testing.F) {
	f.Add([]byte(`{"entity":{"_key":"k1","_type":"user","_class":"User","name":"a"}}`))
	f.Add([]byte(`{"relationship":{"_key":"r","_type":"t","_class":"HAS","_fromEntityKey":"a","_toEntityKey":"b"}}`))
	f.Add([]byte(`{"entity":{"_key":1}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := integration.ParseRecord(line)
		if err != nil {
			if !errors.Is(err, integration.ErrInvalidRecord) {
				t.Fatalf("error outside ErrRecord: %v", err)
			}
			return
		}
		if r.Key == "" || r.Type == "" || r.Class == "" || len(r.Body) == 0 {
			t.Fatalf("accepted a record without its required fields: %+v", r)
		}
		if r.Kind == integration.KindRelationship && (r.From == "" || r.To == "") {
			t.Fatalf("accepted a relationship without endpoints: %+v", r)
		}
	})
}

// FuzzParseRecordReference holds ParseRecord to referenceParse: the same
// lines accepted, read the same way.
func FuzzParseRecordReference(f *testing.F) {
	for _, s := range []string{
		`{"entity":{"_key":"k1","_type":"user","_class":"User","name":"a","n":[1,{"x":"}"}],"o":{"a":"\\\""}}}`,
		`{"relationship":{"_key":"r","_type":"t","_class":"HAS","_fromEntityKey":"a","_toEntityKey":"b"}}`,
		`{"entity":{"_key":"victim","_KEY":"attacker","_type":"t","_class":"c"}}`,
		`{"entity":{"\u005fkey":"k","_type":"t","_class":"c","name":1,"name":2}}`,
		`{"Entity":{"_key":"k","_type":"t","_class":"c"}}`,
		` {"entity" : { "_key" : "\ud800" , "_type":"t","_class":"c" } } `,
		`{"entity":{"_key":"k","_type":"t","_class":"c"}} {}`,
		`{"entity":{"_key":null,"_type":"t","_class":"c","_\u212aey":1}}`,
		`{"entity":{"_key":"k","_type":"t","_class":"c","_fromEntityKey":"","_toEntityKey":7}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := integration.ParseRecord(line)
		want, ok := referenceParse(line)
		if (err == nil) != ok {
			t.Fatalf("ParseRecord(%q) = %v; the reference accepts: %v", line, err, ok)
		}
		if err != nil {
			if !errors.Is(err, integration.ErrInvalidRecord) {
				t.Fatalf("error outside ErrInvalidRecord: %v", err)
			}
			return
		}
		if r.Kind != want.Kind || r.Key != want.Key || r.Type != want.Type || r.Class != want.Class ||
			r.From != want.From || r.To != want.To || !bytes.Equal(r.Body, want.Body) {
			t.Fatalf("ParseRecord(%q) = %+v, reference %+v", line, r, want)
		}
	})
}
