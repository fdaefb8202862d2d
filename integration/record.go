package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Kind says whether a record is an entity or a relationship.
type Kind string

// The record kinds.
const (
	KindEntity       Kind = "entity"
	KindRelationship Kind = "relationship"
)

// Record is one output line, parsed and checked.
type Record struct {
	Kind  Kind
	Key   string
	Type  string
	Class string
	// From and To are set for relationships.
	From, To string
	// Body is the JSON object inside the wrapper, as written.
	Body json.RawMessage
}

// ParseRecord parses and checks one output line (without its newline), as
// the runner and the platform do: a JSON object with exactly one member,
// "entity" or "relationship", whose value is an object carrying non-empty
// string "_key", "_type" and "_class" (and "_fromEntityKey",
// "_toEntityKey" for a relationship), each at most MaxKeyBytes. The error
// says why a line is refused. Properties are decoded into a struct of the
// required fields only, so a record costs no map of its properties.
func ParseRecord(line []byte) (*Record, error) {
	line = bytes.TrimSpace(line)
	switch {
	case len(line) == 0:
		return nil, fmt.Errorf("%w: empty line", ErrInvalidRecord)
	case len(line)+1 > MaxRecordBytes:
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrInvalidRecord, len(line)+1, MaxRecordBytes)
	case !utf8.Valid(line):
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalidRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var w struct {
		Entity       json.RawMessage `json:"entity"`
		Relationship json.RawMessage `json:"relationship"`
	}
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: want {\"entity\": {...}} or {\"relationship\": {...}}: %v", ErrInvalidRecord, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: more than one JSON value on the line", ErrInvalidRecord)
	}
	r := &Record{}
	switch {
	case w.Entity != nil && w.Relationship != nil:
		return nil, fmt.Errorf("%w: want exactly one member, \"entity\" or \"relationship\"; got both", ErrInvalidRecord)
	case w.Entity != nil:
		r.Kind, r.Body = KindEntity, w.Entity
	case w.Relationship != nil:
		r.Kind, r.Body = KindRelationship, w.Relationship
	default:
		return nil, fmt.Errorf("%w: want exactly one member, \"entity\" or \"relationship\"", ErrInvalidRecord)
	}
	if len(r.Body) == 0 || r.Body[0] != '{' {
		return nil, fmt.Errorf("%w: %s is not a JSON object", ErrInvalidRecord, r.Kind)
	}
	var f struct {
		Key   *string `json:"_key"`
		Type  *string `json:"_type"`
		Class *string `json:"_class"`
		From  *string `json:"_fromEntityKey"`
		To    *string `json:"_toEntityKey"`
	}
	if err := json.Unmarshal(r.Body, &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidRecord, r.Kind, err)
	}
	want := []field{{"_key", f.Key, &r.Key}, {"_type", f.Type, &r.Type}, {"_class", f.Class, &r.Class}}
	if r.Kind == KindRelationship {
		want = append(want, field{"_fromEntityKey", f.From, &r.From}, field{"_toEntityKey", f.To, &r.To})
	}
	for _, w := range want {
		switch {
		case w.v == nil:
			return nil, fmt.Errorf("%w: %s has no %s", ErrInvalidRecord, r.Kind, w.name)
		case *w.v == "":
			return nil, fmt.Errorf("%w: %s %s must be a non-empty string", ErrInvalidRecord, r.Kind, w.name)
		case len(*w.v) > MaxKeyBytes:
			return nil, fmt.Errorf("%w: %s %s is over %d bytes", ErrInvalidRecord, r.Kind, w.name, MaxKeyBytes)
		}
		*w.dst = *w.v
	}
	return r, nil
}

// MaxKeyBytes bounds _key, _type, _class and the endpoint keys.
const MaxKeyBytes = 1024

// field is a required member of a record and where its value goes.
type field struct {
	name string
	v    *string
	dst  *string
}
