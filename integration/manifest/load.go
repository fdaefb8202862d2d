package manifest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// DefaultFile is the manifest's file name in an integration's directory.
const DefaultFile = "integration.yaml"

// Load reads a manifest source file (YAML or JSON) as an author writes it.
// Its config_schema may be the schema itself or the name of a JSON file,
// relative to the manifest's directory, which is read in its place.
func Load(path string) (*Manifest, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := parseSource(src, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// parseSource reads a manifest source, resolving a schema file in dir.
func parseSource(src []byte, dir string) (*Manifest, error) {
	if len(src) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(src), MaxSize)
	}
	doc, err := yaml.YAMLToJSON(src)
	if err != nil {
		return nil, fmt.Errorf("%w: not YAML or JSON: %v", ErrInvalid, err)
	}
	var w wire
	if err := strictJSON(doc, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var file string
	if len(w.ConfigSchema) > 0 && json.Unmarshal(w.ConfigSchema, &file) == nil {
		if filepath.IsAbs(file) || file == "" {
			return nil, fmt.Errorf("%w: config_schema: %q: want a file name relative to the manifest, or the schema itself", ErrInvalid, file)
		}
		schema, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("%w: config_schema: %v", ErrInvalid, err)
		}
		w.ConfigSchema = schema
	}
	m, err := w.check()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return m, nil
}
