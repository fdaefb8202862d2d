package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// DefaultConfigPath is where the runner places the job's config; a
// program run directly reads another with --config or ConfigPathEnv.
const DefaultConfigPath = "/run/collector/config.json"

// MaxConfigBytes bounds the config file an integration reads.
const MaxConfigBytes = 1 << 20

// ReadConfig reads the config file at path (DefaultConfigPath when empty),
// at most MaxConfigBytes.
func ReadConfig(path string) ([]byte, error) {
	if path == "" {
		path = DefaultConfigPath
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: read config: %w", ErrBadConfig, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read config %s: %w", ErrBadConfig, path, err)
	}
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("%w: read config %s: larger than %d bytes", ErrBadConfig, path, MaxConfigBytes)
	}
	return data, nil
}

// DecodeConfig decodes a config document into v, refusing unknown fields
// so that a typo in a field name is an error, not a silent default. An
// empty document leaves v as it is.
func DecodeConfig(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decode config: %w", ErrBadConfig, err)
	}
	return nil
}

// LoadConfig reads the config at path (DefaultConfigPath when empty) and
// decodes it into v.
func LoadConfig(path string, v any) error {
	data, err := ReadConfig(path)
	if err != nil {
		return err
	}
	return DecodeConfig(data, v)
}
