package integration

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what every printed form of a Secret shows.
const Redacted = "[REDACTED]"

// Secret holds a secret config value (a password, a token). Every way Go
// prints it shows [REDACTED]: fmt with any verb (%v, %s, %q, %x, %#v,
// inside structs and slices), log/slog, encoding/json and text encoders.
// Only Reveal returns the value: call it where the value is used, never
// to print it.
//
// It decodes from a JSON string (null or absent: empty), so a config
// struct can declare its secret fields as Secret:
//
//	type Config struct {
//		URL      string             `json:"url"`
//		Password integration.Secret `json:"password"`
//	}
//
// The value sits behind a pointer, so even a struct printed with an
// unexported Secret field (which fmt cannot ask to format itself) shows
// an address, never the value.
type Secret struct{ v *string }

// NewSecret wraps a value.
func NewSecret(value string) Secret { return Secret{v: &value} }

// Reveal returns the value.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is empty (so `omitzero` drops it).
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// String is [REDACTED].
func (s Secret) String() string { return Redacted }

// GoString is [REDACTED] (%#v).
func (s Secret) GoString() string { return Redacted }

// Format prints [REDACTED] for every verb, %x and %q included.
func (s Secret) Format(f fmt.State, verb rune) { f.Write([]byte(Redacted)) }

// LogValue is [REDACTED] (log/slog).
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON is "[REDACTED]".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText is [REDACTED] (text encoders, map keys).
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// UnmarshalJSON reads a JSON string, or null as empty.
func (s *Secret) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = Secret{}
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("secret: want a JSON string")
	}
	*s = NewSecret(v)
	return nil
}
