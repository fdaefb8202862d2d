package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

// validCases are texts at the edges of the grammar, each checked against
// json.Valid.
var validCases = []string{
	``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `01`, `-`, `1.`, `.5`, `1.5e`, `1.5e+`, `1.5E-7`, `1e5`, `-12.50e+003`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `NaN`, `Infinity`, ` {"a":1} `, "\t[1,2]\r\n", `{"a":1,}`, `[1,]`,
	`[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`, `{"a":1}}`, `[[]`, `"\u00e9\n\"\\\/\b\f\r\t"`,
	`"\u00g0"`, `"\u12"`, `"\x"`, "\"a\x01b\"", "\"a\x7fb\"", "\"\xff\xfe\"", `"abc`, `"abc\`, `{"entity":{"_key":"k","_type":"t","_class":"C"}}`,
	`{"a":[1,{"b":[true,false,null,"x",-1.5e3]}],"c":{}}`, `1 2`, `{} {}`, "\u00a0{}", `{"a":1}x`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
	strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1),
}

func TestValidJSONIsJSONValid(t *testing.T) {
	for _, c := range validCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.80q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

// FuzzValidJSON: validJSON and json.Valid agree on every input.
func FuzzValidJSON(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
