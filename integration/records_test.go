package integration_test

import (
	"errors"
	"strings"
	"testing"

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
		`{"thing":{}}`:                          "unknown field",
		`{"entity":[1]}`:                        "not a JSON object",
		`{"entity":"x"}`:                        "not a JSON object",
		`{"entity":{"_type":"t","_class":"c"}}`: "_key",
		`{"entity":{"_key":"","_type":"t","_class":"c"}}`:                                                                  "_key",
		`{"entity":{"_key":1,"_type":"t","_class":"c"}}`:                                                                   "cannot unmarshal",
		`{"entity":{"_key":"k","_class":"c"}}`:                                                                             "_type",
		`{"entity":{"_key":"k","_type":"t"}}`:                                                                              "_class",
		`{"relationship":{"_key":"k","_type":"t","_class":"c","_toEntityKey":"b"}}`:                                        "_fromEntityKey",
		`{"relationship":{"_key":"k","_type":"t","_class":"c","_fromEntityKey":"a"}}`:                                      "_toEntityKey",
		`{"entity":{"_key":"k","_type":"t","_class":"c"}} {}`:                                                              "more than one",
		"{\"entity\":{\"_key\":\"\xff\",\"_type\":\"t\",\"_class\":\"c\"}}":                                                "UTF-8",
		`{"entity":{"_key":"` + strings.Repeat("k", 2000) + `","_type":"t","_class":"c"}}`:                                 "over 1024",
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
