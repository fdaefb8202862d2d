package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
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
// the runner does: a JSON object with exactly one member, "entity" or
// "relationship", whose value is an object carrying non-empty string
// "_key", "_type" and "_class" (and "_fromEntityKey", "_toEntityKey" for a
// relationship).
func ParseRecord(line []byte) (*Record, error) {
	line = bytes.TrimSpace(line)
	if len(line)+1 > MaxRecordBytes {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrInvalidRecord, len(line)+1, MaxRecordBytes)
	}
	var wrapper map[string]json.RawMessage
	if err := json.Unmarshal(line, &wrapper); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrInvalidRecord, err)
	}
	if len(wrapper) != 1 {
		return nil, fmt.Errorf("%w: want exactly one member, \"entity\" or \"relationship\"; got %d", ErrInvalidRecord, len(wrapper))
	}
	r := &Record{}
	for k, v := range wrapper {
		r.Kind, r.Body = Kind(k), v
	}
	if r.Kind != KindEntity && r.Kind != KindRelationship {
		return nil, fmt.Errorf("%w: unknown record kind %q", ErrInvalidRecord, r.Kind)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("%w: %s is not a JSON object", ErrInvalidRecord, r.Kind)
	}
	want := []field{{"_key", &r.Key}, {"_type", &r.Type}, {"_class", &r.Class}}
	if r.Kind == KindRelationship {
		want = append(want, field{"_fromEntityKey", &r.From}, field{"_toEntityKey", &r.To})
	}
	for _, w := range want {
		raw, ok := fields[w.name]
		if !ok {
			return nil, fmt.Errorf("%w: %s has no %s", ErrInvalidRecord, r.Kind, w.name)
		}
		if err := json.Unmarshal(raw, w.dst); err != nil || *w.dst == "" {
			return nil, fmt.Errorf("%w: %s %s must be a non-empty string", ErrInvalidRecord, r.Kind, w.name)
		}
	}
	return r, nil
}

// field is a required member of a record and where its value goes.
type field struct {
	name string
	dst  *string
}
