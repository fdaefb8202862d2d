package integration_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/collectorhq/collector/integration"
)

// benchEntity is a realistic record: the three reserved members and ten
// properties of the usual kinds, one string with escapes, one nested.
var benchEntity = []byte(`{"entity":{"_key":"host-000123","_type":"acme_host","_class":"Host",` +
	`"name":"web-123.example.com","displayName":"Web server \"123\"","cpus":16,"memoryBytes":68719476736,` +
	`"active":true,"load":0.73,"tags":["prod","eu-west-1","web"],"owner":{"team":"platform","email":"ops@example.com"},` +
	`"createdOn":1733011200000,"os":"linux"}}`)

// BenchmarkParseRecord compares ParseRecord with the baseline it replaced:
// encoding/json decoding the wrapper, then the reserved members, into
// structs (which matched names case-insensitively, last one winning).
// Compare the two lines of one run: ns/op and allocs/op.
func BenchmarkParseRecord(b *testing.B) {
	b.Run("ParseRecord", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchEntity)))
		for b.Loop() {
			if _, err := integration.ParseRecord(benchEntity); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchEntity)))
		for b.Loop() {
			if err := decodeWithStructs(benchEntity); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// decodeWithStructs is the decoding of the ParseRecord this package had
// before names were matched exactly: the baseline of BenchmarkParseRecord.
func decodeWithStructs(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var w struct {
		Entity       json.RawMessage `json:"entity"`
		Relationship json.RawMessage `json:"relationship"`
	}
	if err := dec.Decode(&w); err != nil {
		return err
	}
	var f struct {
		Key   *string `json:"_key"`
		Type  *string `json:"_type"`
		Class *string `json:"_class"`
		From  *string `json:"_fromEntityKey"`
		To    *string `json:"_toEntityKey"`
	}
	return json.Unmarshal(w.Entity, &f)
}
