package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxRecordBytes bounds one output line (the record and its newline). The
// runner fails a job that writes a longer line.
const MaxRecordBytes = 1 << 20

// ErrInvalidRecord is returned for a record the runner would refuse.
var ErrInvalidRecord = errors.New("invalid record")

// Prop is one property of a record: a name and a JSON-encodable value.
type Prop struct {
	Name  string
	Value any
}

// String, Int, Float and Bool build properties without reflection.
func String(name, v string) Prop { return Prop{name, v} }

// Int is an integer property.
func Int(name string, v int64) Prop { return Prop{name, v} }

// Float is a floating-point property (NaN and infinities are refused).
func Float(name string, v float64) Prop { return Prop{name, v} }

// Bool is a boolean property.
func Bool(name string, v bool) Prop { return Prop{name, v} }

// reserved are the member names the SDK writes itself.
var reserved = map[string]bool{"_key": true, "_type": true, "_class": true, "_fromEntityKey": true, "_toEntityKey": true}

// Emitter writes records, one JSON object per line, through a buffer.
// It is not safe for concurrent use. Call Flush before exiting.
type Emitter struct {
	w     *bufio.Writer
	line  []byte
	count int64
	err   error
}

// NewEmitter returns an Emitter writing to w (os.Stdout in an integration)
// through a 64 KiB buffer.
func NewEmitter(w io.Writer) *Emitter {
	return &Emitter{w: bufio.NewWriterSize(w, 64<<10), line: make([]byte, 0, 512)}
}

// Count returns how many records were emitted.
func (e *Emitter) Count() int64 { return e.count }

// Entity emits {"entity": {"_key": key, "_type": typ, "_class": class, props...}}.
func (e *Emitter) Entity(key, typ, class string, props ...Prop) error {
	if key == "" || typ == "" || class == "" {
		return fmt.Errorf("%w: entity needs _key, _type and _class (got %q, %q, %q)", ErrInvalidRecord, key, typ, class)
	}
	if err := checkReserved(KindEntity, key, typ, class); err != nil {
		return err
	}
	b := append(e.line[:0], `{"entity":{"_key":`...)
	b = AppendString(b, key)
	b = append(b, `,"_type":`...)
	b = AppendString(b, typ)
	b = append(b, `,"_class":`...)
	b = AppendString(b, class)
	return e.finish(b, props)
}

// Relationship emits {"relationship": {"_key", "_type", "_class",
// "_fromEntityKey", "_toEntityKey", props...}}.
func (e *Emitter) Relationship(key, typ, class, from, to string, props ...Prop) error {
	if key == "" || typ == "" || class == "" || from == "" || to == "" {
		return fmt.Errorf("%w: relationship needs _key, _type, _class, _fromEntityKey and _toEntityKey", ErrInvalidRecord)
	}
	if err := checkReserved(KindRelationship, key, typ, class, from, to); err != nil {
		return err
	}
	b := append(e.line[:0], `{"relationship":{"_key":`...)
	b = AppendString(b, key)
	b = append(b, `,"_type":`...)
	b = AppendString(b, typ)
	b = append(b, `,"_class":`...)
	b = AppendString(b, class)
	b = append(b, `,"_fromEntityKey":`...)
	b = AppendString(b, from)
	b = append(b, `,"_toEntityKey":`...)
	b = AppendString(b, to)
	return e.finish(b, props)
}

func (e *Emitter) finish(b []byte, props []Prop) error {
	if e.err != nil {
		return e.err
	}
	if err := checkNames(props); err != nil {
		return err
	}
	var err error
	for _, p := range props {
		b = append(b, ',')
		b = AppendString(b, p.Name)
		b = append(b, ':')
		if b, err = appendValue(b, p.Value); err != nil {
			return fmt.Errorf("%w: property %q: %v", ErrInvalidRecord, p.Name, err)
		}
	}
	b = append(b, "}}\n"...)
	e.line = b[:0]
	if len(b) > MaxRecordBytes {
		return fmt.Errorf("%w: record of %d bytes is over the %d-byte limit", ErrInvalidRecord, len(b), MaxRecordBytes)
	}
	if _, err := e.w.Write(b); err != nil {
		e.err = fmt.Errorf("write record: %w", err)
		return e.err
	}
	e.count++
	return nil
}

// checkReserved refuses what ParseRecord refuses of the reserved members'
// values (their order is reservedNames'): over MaxKeyBytes, or holding a
// NUL.
func checkReserved(kind Kind, vals ...string) error {
	for i, v := range vals {
		switch {
		case len(v) > MaxKeyBytes:
			return fmt.Errorf("%w: %s %s is over %d bytes", ErrInvalidRecord, kind, reservedNames[i], MaxKeyBytes)
		case strings.IndexByte(v, 0) >= 0:
			return fmt.Errorf(`%w: %s %s holds a NUL character (\u0000)`, ErrInvalidRecord, kind, reservedNames[i])
		}
	}
	return nil
}

// checkNames refuses what ParseRecord refuses of property names: empty, a
// reserved name or one that differs from it only in case, or a name given
// twice. A record has a handful of properties: pairs are compared; a map
// takes over past smallNames.
func checkNames(props []Prop) error {
	const smallNames = 24
	var seen map[string]bool
	if len(props) > smallNames {
		seen = make(map[string]bool, len(props))
	}
	for i, p := range props {
		if p.Name == "" || reserved[p.Name] {
			return fmt.Errorf("%w: property name %q is empty or reserved", ErrInvalidRecord, p.Name)
		}
		if _, err := reservedIndex([]byte(p.Name)); err != nil {
			return fmt.Errorf("%w: property %v", ErrInvalidRecord, err)
		}
		dup := false
		if seen != nil {
			dup = seen[p.Name]
			seen[p.Name] = true
		} else {
			for _, q := range props[:i] {
				dup = dup || q.Name == p.Name
			}
		}
		if dup {
			return fmt.Errorf("%w: property %q given twice", ErrInvalidRecord, p.Name)
		}
	}
	return nil
}

// Flush writes buffered records out.
func (e *Emitter) Flush() error {
	if e.err != nil {
		return e.err
	}
	if err := e.w.Flush(); err != nil {
		e.err = fmt.Errorf("flush records: %w", err)
	}
	return e.err
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return AppendString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return b, errors.New("NaN and infinity are not JSON numbers")
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to b as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
