package manifest_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/integration/manifest"
)

const schema = `{"type":"object","additionalProperties":false,"required":["url"],"properties":{
	"url":{"type":"string"},"password":{"type":"string","writeOnly":true,"maxLength":8},"n":{"type":"integer","minimum":1}}}`

func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadYAMLWithSchemaFile(t *testing.T) {
	dir := write(t, map[string]string{
		"integration.yaml": `manifest_version: 1
name: acme-hosts
version: 0.3.1
description: Hosts from ACME.
config_schema: config.schema.json
resources: {memory: 256Mi, cpus: 0.5, pids: 64, timeout: 30m}
network: {access: outbound, description: "HTTPS to the ACME API", proxy: true}
validation: {supported: true}
`,
		"config.schema.json": schema,
	})
	m, err := manifest.Load(filepath.Join(dir, "integration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := manifest.Resources{MemoryBytes: 256 << 20, CPUs: 0.5, Pids: 64, Timeout: 30 * time.Minute}
	if m.Name != "acme-hosts" || m.Version != "0.3.1" || m.Resources != want || m.Network.Access != manifest.NetworkOutbound || !m.Network.Proxy {
		t.Errorf("manifest = %+v", m)
	}
	if !m.Validation.Supported || m.Validation.Timeout != manifest.DefaultValidationTimeout {
		t.Errorf("validation = %+v, want supported with the default timeout", m.Validation)
	}
	if len(m.SecretFields) != 1 || m.SecretFields[0] != "password" || !m.IsSecret("password") || m.IsSecret("url") {
		t.Errorf("secret fields = %v, want [password]", m.SecretFields)
	}
	// The label round-trips to the same manifest, schema inline.
	label := m.Label()
	back, err := manifest.Parse([]byte(label))
	if err != nil {
		t.Fatalf("Parse(Label()) = %v\n%s", err, label)
	}
	if back.Label() != label || string(back.ConfigSchema) != string(m.ConfigSchema) || back.Resources != m.Resources {
		t.Errorf("label does not round-trip:\n%s\n%s", label, back.Label())
	}
	if strings.Contains(label, "\n") || !json.Valid([]byte(label)) {
		t.Errorf("label is not compact JSON: %s", label)
	}
}

func TestValidateConfigNamesFieldsHidesSecrets(t *testing.T) {
	m, err := manifest.Parse([]byte(`{"manifest_version":1,"name":"x","version":"1","config_schema":` + schema + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ValidateConfig([]byte(`{"url":"ldap://h","password":"pw","n":2}`)); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	err = m.ValidateConfig([]byte(`{"password":"much-too-long-secret","n":0,"extra":1}`))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, want := range []string{"config field password", "config field n", "url", "extra"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "much-too-long-secret") {
		t.Errorf("error quotes the secret: %s", msg)
	}
}

func TestParseRefuses(t *testing.T) {
	base := map[string]any{"manifest_version": 1, "name": "ok", "version": "1.0"}
	cases := map[string]struct {
		set   map[string]any
		field string
	}{
		"no version":        {map[string]any{"manifest_version": nil}, "manifest_version"},
		"newer":             {map[string]any{"manifest_version": 2}, "newer"},
		"bad name":          {map[string]any{"name": "Bad_Name"}, "name"},
		"empty version":     {map[string]any{"version": ""}, "version"},
		"control chars":     {map[string]any{"description": "a\x1b[31mb"}, "description"},
		"unknown field":     {map[string]any{"nmae": "x"}, "nmae"},
		"schema file":       {map[string]any{"config_schema": "config.schema.json"}, "config_schema"},
		"schema not object": {map[string]any{"config_schema": []int{1}}, "config_schema"},
		"schema remote ref": {map[string]any{"config_schema": map[string]any{"$ref": "https://example.com/s.json"}}, "config_schema"},
		"memory":            {map[string]any{"resources": map[string]any{"memory": "lots"}}, "resources.memory"},
		"memory tiny":       {map[string]any{"resources": map[string]any{"memory": "1Ki"}}, "resources.memory"},
		"cpus":              {map[string]any{"resources": map[string]any{"cpus": -1}}, "resources.cpus"},
		"pids":              {map[string]any{"resources": map[string]any{"pids": 0}}, "resources.pids"},
		"timeout":           {map[string]any{"resources": map[string]any{"timeout": "forever"}}, "resources.timeout"},
		"network":           {map[string]any{"network": map[string]any{"access": "host"}}, "network.access"},
		"proxy without net": {map[string]any{"network": map[string]any{"access": "none", "proxy": true}}, "network.proxy"},
		"validation":        {map[string]any{"validation": map[string]any{"supported": true, "timeout": "1h"}}, "validation.timeout"},
	}
	for name, c := range cases {
		doc := map[string]any{}
		for k, v := range base {
			doc[k] = v
		}
		for k, v := range c.set {
			if v == nil {
				delete(doc, k)
			} else {
				doc[k] = v
			}
		}
		b, _ := json.Marshal(doc)
		_, err := manifest.Parse(b)
		if !errors.Is(err, manifest.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: Parse(%s) = %v, want ErrInvalid naming %s", name, b, err, c.field)
		}
	}
	for _, doc := range []string{``, `[]`, `{"manifest_version":1,"name":"a","name":"b","version":"1"}`, `{"manifest_version":1,"name":"a","version":"1"} {}`,
		`manifest_version: 1`, `{"manifest_version":1,"name":"a","version":"1","config_schema":{"a":1,"a":2}}`} {
		if _, err := manifest.Parse([]byte(doc)); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", doc, err)
		}
	}
	if _, err := manifest.Parse([]byte(`{"manifest_version":1,"name":"a","version":"1","description":"` + strings.Repeat("x", manifest.MaxSize) + `"}`)); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("an oversized manifest was accepted: %v", err)
	}
}

// The integrations in this repository carry valid manifests.
func TestRepositoryManifests(t *testing.T) {
	paths, _ := filepath.Glob("../../integrations/*/integration.yaml")
	if len(paths) < 2 {
		t.Fatalf("found %v: want the example's and ldap's manifests", paths)
	}
	for _, p := range paths {
		m, err := manifest.Load(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if filepath.Base(filepath.Dir(p)) != m.Name || m.ConfigSchema == nil || !m.Validation.Supported {
			t.Errorf("%s: name %q, schema %v, validation %+v: want the directory's name, a schema, validation", p, m.Name, m.ConfigSchema != nil, m.Validation)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "64Ki": 64 << 10, "256Mi": 256 << 20, "2Gi": 2 << 30, "1G": 1e9, "3k": 3000} {
		if got, err := manifest.ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5Gi", "Mi", "9999999999999Ti", " 1"} {
		if _, err := manifest.ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
}

// FuzzParse: a label is untrusted input. Parse never panics, and what it
// accepts gives a label that parses back to the same label.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"manifest_version":1,"name":"x","version":"1","config_schema":` + schema + `,"resources":{"memory":"64Mi","cpus":1,"pids":10,"timeout":"1m"},"network":{"access":"none"},"validation":{"supported":true,"timeout":"5s"}}`))
	f.Add([]byte(`{"manifest_version":1,"name":"a","version":"v"}`))
	f.Add([]byte(`{"manifest_version":1,"name":"a","version":"v","config_schema":{"$ref":"#/$defs/x","$defs":{"x":{"type":"object"}}}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := manifest.Parse(doc)
		if err != nil {
			if !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := manifest.Parse([]byte(m.Label()))
		if err != nil || again.Label() != m.Label() {
			t.Fatalf("accepted %q, but its label %q does not parse back the same: %v", doc, m.Label(), err)
		}
		m.ValidateConfig([]byte(`{"a":1}`))
	})
}
