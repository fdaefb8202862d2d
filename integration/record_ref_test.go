package integration_test

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/collectorhq/collector/integration"
)

// reserved are the record members ParseRecord reads itself.
var reservedNames = []string{"_key", "_type", "_class", "_fromEntityKey", "_toEntityKey"}

// referenceParse is the contract of docs/integration-contract.md section 2
// written the slow, obvious way, with json.Decoder.Token (whose names are
// unescaped, and matched here exactly): the fuzz target holds ParseRecord
// to it. ok is false for a line the contract refuses.
func referenceParse(line []byte) (r integration.Record, ok bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || len(line)+1 > integration.MaxRecordBytes || !utf8.Valid(line) || !json.Valid(line) {
		return r, false
	}
	wrapper, ok := referenceMembers(line)
	if !ok || len(wrapper) != 1 {
		return r, false
	}
	switch wrapper[0].name {
	case "entity":
		r.Kind = integration.KindEntity
	case "relationship":
		r.Kind = integration.KindRelationship
	default:
		return r, false
	}
	r.Body = wrapper[0].value
	members, ok := referenceMembers(r.Body)
	if !ok {
		return r, false
	}
	got := map[string]string{}
	for _, m := range members {
		for _, res := range reservedNames {
			if strings.EqualFold(m.name, res) && m.name != res {
				return r, false // differs from a reserved name only in case
			}
		}
		if !isReserved(m.name) {
			continue
		}
		var s string
		if m.value[0] != '"' || json.Unmarshal(m.value, &s) != nil {
			return r, false
		}
		got[m.name] = s
	}
	want := []string{"_key", "_type", "_class"}
	if r.Kind == integration.KindRelationship {
		want = append(want, "_fromEntityKey", "_toEntityKey")
	}
	for _, name := range want {
		if s, ok := got[name]; !ok || s == "" || len(s) > integration.MaxKeyBytes {
			return r, false
		}
	}
	r.Key, r.Type, r.Class = got["_key"], got["_type"], got["_class"]
	if r.Kind == integration.KindRelationship {
		r.From, r.To = got["_fromEntityKey"], got["_toEntityKey"]
	}
	return r, true
}

type refMember struct {
	name  string
	value json.RawMessage
}

// referenceMembers returns the members of the JSON object obj, in order;
// ok is false if obj is not an object or repeats a member name.
func referenceMembers(obj []byte) (ms []refMember, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name := tok.(string)
		if seen[name] {
			return nil, false
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		ms = append(ms, refMember{name, v})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return ms, true
}

func isReserved(name string) bool {
	for _, r := range reservedNames {
		if name == r {
			return true
		}
	}
	return false
}
