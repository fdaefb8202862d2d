package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
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
	// Body is the JSON object inside the wrapper, as written. It shares
	// the memory of the line given to ParseRecord.
	Body json.RawMessage
}

// MaxKeyBytes bounds _key, _type, _class and the endpoint keys.
const MaxKeyBytes = 1024

// The reserved members of a record, in the order of Record's fields.
const (
	resKey = iota
	resType
	resClass
	resFrom
	resTo
	numReserved
)

var reservedNames = [numReserved]string{"_key", "_type", "_class", "_fromEntityKey", "_toEntityKey"}

// ParseRecord parses and checks one output line (without its newline), as
// the runner and the platform do: a JSON object with exactly one member,
// "entity" or "relationship", whose value is an object carrying non-empty
// string "_key", "_type" and "_class" (and "_fromEntityKey",
// "_toEntityKey" for a relationship), each at most MaxKeyBytes and without
// a NUL character. The error
// says why a line is refused.
//
// Member names match exactly, compared after unescaping ("\u005fkey" is
// "_key"); a name may appear only once in an object, and a name that
// differs from a reserved one only in case ("_KEY") is refused: encoding/json
// would match it case-insensitively, last one winning, so a second spelling
// could replace the key the first one set. The line is validated in one
// pass (validJSON), then the two objects' members are walked without
// decoding the properties.
func ParseRecord(line []byte) (*Record, error) {
	line = bytes.TrimSpace(line)
	if err := checkLine(line); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidRecord, err)
	}
	r := &Record{}
	if err := r.parse(line); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidRecord, err)
	}
	return r, nil
}

// checkLine checks what holds for any line: its size, UTF-8 and JSON syntax.
func checkLine(line []byte) error {
	switch {
	case len(line) == 0:
		return fmt.Errorf("empty line")
	case len(line)+1 > MaxRecordBytes:
		return fmt.Errorf("%d bytes is over the %d-byte limit", len(line)+1, MaxRecordBytes)
	case !utf8.Valid(line):
		return fmt.Errorf("not valid UTF-8")
	case !validJSON(line):
		return syntaxError(line)
	}
	return nil
}

// syntaxError says why validJSON refused line: the rare path, so it may
// decode again to find out.
func syntaxError(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("want {\"entity\": {...}} or {\"relationship\": {...}}: %v", err)
	}
	return fmt.Errorf("trailing data after the first JSON value on the line (at byte %d)", dec.InputOffset())
}

const wantWrapper = `want exactly one member, "entity" or "relationship"`

// parse reads the wrapper, then the record object, of a valid JSON line.
func (r *Record) parse(line []byte) error {
	if line[0] != '{' {
		return fmt.Errorf(`want {"entity": {...}} or {"relationship": {...}}, got %s`, jsonKind(line))
	}
	if err := r.parseWrapper(line); err != nil {
		return err
	}
	if r.Body[0] != '{' {
		return fmt.Errorf("%s is not a JSON object: got %s", r.Kind, jsonKind(r.Body))
	}
	return r.parseBody()
}

// parseWrapper finds the record's kind and body: the wrapper's one member.
func (r *Record) parseWrapper(line []byte) error {
	s := scanner{b: line}
	s.open()
	for {
		m, ok := s.next()
		if !ok {
			break
		}
		name, err := m.decodedName()
		if err != nil {
			return err
		}
		kind := wrapperKind(name)
		switch {
		case kind == "":
			return unknownWrapperMember(name)
		case r.Kind == kind:
			return fmt.Errorf("duplicate member %q", name)
		case r.Kind != "":
			return fmt.Errorf("%s; got both", wantWrapper)
		}
		r.Kind, r.Body = kind, m.value
	}
	if r.Kind == "" {
		return fmt.Errorf("%s", wantWrapper)
	}
	return nil
}

// wrapperKind returns the kind a wrapper member name stands for, or "".
func wrapperKind(name []byte) Kind {
	switch string(name) {
	case string(KindEntity):
		return KindEntity
	case string(KindRelationship):
		return KindRelationship
	}
	return ""
}

func unknownWrapperMember(name []byte) error {
	if bytes.EqualFold(name, []byte(KindEntity)) || bytes.EqualFold(name, []byte(KindRelationship)) {
		return fmt.Errorf("unknown member %q: member names are case-sensitive; %s", quoteName(name), wantWrapper)
	}
	return fmt.Errorf("unknown member %q; %s", quoteName(name), wantWrapper)
}

// parseBody walks the record object: every name once, reserved members
// strings, required ones present.
func (r *Record) parseBody() error {
	var vals [numReserved][]byte // the reserved members' values, as written
	var names nameSet
	s := scanner{b: r.Body}
	s.open()
	for {
		m, ok := s.next()
		if !ok {
			break
		}
		name, err := m.decodedName()
		if err != nil {
			return err
		}
		if names.add(name) {
			return fmt.Errorf("duplicate member %q in the %s", quoteName(name), r.Kind)
		}
		res, err := reservedIndex(name)
		if err != nil {
			return err
		}
		if res >= 0 {
			vals[res] = m.value
		}
	}
	return r.setReserved(&vals)
}

// reservedIndex says which reserved member name is, -1 for a property. A
// name that differs from a reserved one only in case is an error.
func reservedIndex(name []byte) (int, error) {
	if len(name) < 4 || name[0] != '_' {
		return -1, nil // every reserved name starts with "_" and has at least 4 bytes
	}
	for i, res := range reservedNames {
		if string(name) == res {
			return i, nil
		}
	}
	for _, res := range reservedNames {
		if bytes.EqualFold(name, []byte(res)) {
			return -1, fmt.Errorf("member %q differs from the reserved %q only in case: names are case-sensitive", quoteName(name), res)
		}
	}
	return -1, nil
}

// setReserved checks the reserved members and copies those the record
// keeps into r, in one allocation.
func (r *Record) setReserved(vals *[numReserved][]byte) error {
	dst := [numReserved]*string{&r.Key, &r.Type, &r.Class, &r.From, &r.To}
	if r.Kind == KindEntity {
		dst[resFrom], dst[resTo] = nil, nil // an entity's endpoints must be strings, and are ignored
	}
	var dec [numReserved][]byte
	total := 0
	for i, v := range vals {
		b, err := r.reserved(reservedNames[i], v, dst[i] != nil)
		if err != nil {
			return err
		}
		dec[i], total = b, total+len(b)
	}
	var all strings.Builder
	all.Grow(total)
	for i, b := range dec {
		if dst[i] != nil {
			start := all.Len()
			all.Write(b)
			*dst[i] = all.String()[start:]
		}
	}
	return nil
}

// reserved checks the value v (nil when absent) of the reserved member
// name, and returns its contents when the record keeps it.
func (r *Record) reserved(name string, v []byte, keep bool) ([]byte, error) {
	switch {
	case v == nil && keep:
		return nil, fmt.Errorf("%s has no %s", r.Kind, name)
	case v == nil:
		return nil, nil
	case v[0] != '"':
		return nil, fmt.Errorf("%s %s must be a JSON string, got %s", r.Kind, name, jsonKind(v))
	case !keep:
		return nil, nil
	}
	b, err := unquote(v)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s %s: %v", r.Kind, name, err)
	case len(b) == 0:
		return nil, fmt.Errorf("%s %s must be a non-empty string", r.Kind, name)
	case len(b) > MaxKeyBytes:
		return nil, fmt.Errorf("%s %s is over %d bytes", r.Kind, name, MaxKeyBytes)
	case bytes.IndexByte(b, 0) >= 0:
		// PostgreSQL's text cannot hold one; refused on every backend so
		// that a record valid on one is valid on all.
		return nil, fmt.Errorf(`%s %s holds a NUL character (\u0000)`, r.Kind, name)
	}
	return b, nil
}

// unquote returns the contents of the JSON string v: the bytes between its
// quotes unless they hold an escape (rare), which encoding/json decodes.
func unquote(v []byte) ([]byte, error) {
	b := v[1 : len(v)-1]
	if bytes.IndexByte(b, '\\') < 0 {
		return b, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// jsonKind names the kind of the valid JSON value v, for errors.
func jsonKind(v []byte) string {
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// quoteName shortens a member name for an error message (%q then escapes
// what a terminal would act on).
func quoteName(name []byte) string {
	const max = 64
	if len(name) <= max {
		return string(name)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return string(name[:cut]) + "..."
}

// nameSet finds repeated member names: a linear scan over the first few
// (records usually have fewer than 20 members, and a scan costs less than
// hashing them), a map beyond, so a line of many thousand members stays
// linear.
type nameSet struct {
	small [24][]byte
	n     int
	big   map[string]struct{}
}

// add adds name and says whether it was there already.
func (ns *nameSet) add(name []byte) (dup bool) {
	if ns.big == nil {
		for _, seen := range ns.small[:ns.n] {
			if bytes.Equal(seen, name) {
				return true
			}
		}
		if ns.n < len(ns.small) {
			ns.small[ns.n] = name
			ns.n++
			return false
		}
		ns.big = make(map[string]struct{}, 4*len(ns.small))
		for _, seen := range ns.small {
			ns.big[string(seen)] = struct{}{}
		}
	}
	if _, ok := ns.big[string(name)]; ok {
		return true
	}
	ns.big[string(name)] = struct{}{}
	return false
}

// scanner walks the members of an object in JSON text already known to
// be valid (validJSON), so it checks nothing and cannot run past the end.
type scanner struct {
	b []byte
	i int
}

// member is one member of an object, as written.
type member struct {
	quoted []byte // the name with its quotes
	esc    bool   // the name holds a backslash escape
	value  []byte
}

// decodedName returns the member's name, unescaped.
func (m member) decodedName() ([]byte, error) {
	if !m.esc {
		return m.quoted[1 : len(m.quoted)-1], nil
	}
	name, err := unquote(m.quoted)
	if err != nil {
		return nil, fmt.Errorf("member name: %v", err)
	}
	return name, nil
}

// open steps into the object that starts the text.
func (s *scanner) open() {
	s.space()
	s.i++ // '{'
}

// next returns the object's next member; ok is false at its end.
func (s *scanner) next() (m member, ok bool) {
	s.space()
	if s.b[s.i] == ',' {
		s.i++
		s.space()
	}
	if s.b[s.i] == '}' {
		s.i++
		return member{}, false
	}
	m.quoted, m.esc = s.str()
	s.space()
	s.i++ // ':'
	s.space()
	start := s.i
	s.skipValue()
	m.value = s.b[start:s.i]
	return m, true
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str skips the string at s.i and returns it, quotes included, and
// whether it holds an escape.
func (s *scanner) str() (quoted []byte, esc bool) {
	start := s.i
	i := start + 1
	for {
		switch s.b[i] {
		case '"':
			s.i = i + 1
			return s.b[start:s.i], esc
		case '\\':
			esc = true
			i++ // the escaped byte cannot end the string
		}
		i++
	}
}

// skipValue skips the value at s.i.
func (s *scanner) skipValue() {
	switch s.b[s.i] {
	case '"':
		s.str()
	case '{', '[':
		s.skipContainer()
	default: // a number, true, false or null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			s.i++
		}
	}
}

// skipContainer skips the object or array at s.i, strings and all.
func (s *scanner) skipContainer() {
	depth := 0
	for {
		switch s.b[s.i] {
		case '"':
			s.str()
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i++
				return
			}
		}
		s.i++
	}
}
