package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/collectorhq/collector/integration"
)

func TestEmitterWritesParsableLines(t *testing.T) {
	var buf bytes.Buffer
	e := integration.NewEmitter(&buf)
	if err := e.Entity("k\"1\n", "t", "Record", integration.String("name", "a\tb\u2028"), integration.Int("n", -3),
		integration.Float("f", 1.5), integration.Bool("ok", true), integration.Prop{Name: "list", Value: []int{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Relationship("r", "t_r", "HAS", "k\"1\n", "k2"); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("records written before Flush: %q", buf.String())
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := e.Count(); got != 2 {
		t.Errorf("Count = %d, want 2", got)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %q", len(lines), buf.String())
	}
	r, err := integration.ParseRecord([]byte(lines[0]))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != integration.KindEntity || r.Key != "k\"1\n" || r.Type != "t" || r.Class != "Record" {
		t.Errorf("entity = %+v", r)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["name"] != "a\tb\u2028" || body["n"] != -3.0 || body["f"] != 1.5 || body["ok"] != true {
		t.Errorf("entity properties = %v", body)
	}
	r, err = integration.ParseRecord([]byte(lines[1]))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != integration.KindRelationship || r.From != "k\"1\n" || r.To != "k2" {
		t.Errorf("relationship = %+v", r)
	}
}

func TestEmitterRefusesInvalidRecords(t *testing.T) {
	e := integration.NewEmitter(&bytes.Buffer{})
	for name, err := range map[string]error{
		"no key":        e.Entity("", "t", "c"),
		"no class":      e.Entity("k", "t", ""),
		"no to":         e.Relationship("k", "t", "c", "a", ""),
		"reserved prop": e.Entity("k", "t", "c", integration.String("_key", "x")),
		"NaN":           e.Entity("k", "t", "c", integration.Float("f", zero()/zero())),
		"too long":      e.Entity("k", "t", "c", integration.String("big", strings.Repeat("x", integration.MaxRecordBytes))),
		// What ParseRecord refuses, so the runner would (the Emitter took
		// each before, and the integration believed it had a full sync).
		"long key":        e.Entity(strings.Repeat("k", integration.MaxKeyBytes+1), "t", "c"),
		"NUL in key":      e.Entity("a\x00b", "t", "c"),
		"NUL in from":     e.Relationship("k", "t", "c", "\x00", "b"),
		"long class":      e.Relationship("k", "t", strings.Repeat("c", integration.MaxKeyBytes+1), "a", "b"),
		"case of _key":    e.Entity("k", "t", "c", integration.String("_KEY", "x")),
		"kelvin _key":     e.Entity("k", "t", "c", integration.String("_\u212aey", "x")),
		"duplicate":       e.Entity("k", "t", "c", integration.String("name", "a"), integration.Int("name", 1)),
		"many, duplicate": e.Entity("k", "t", "c", manyProps(40, "p7")...),
	} {
		if !errors.Is(err, integration.ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want ErrInvalidRecord", name, err)
		}
	}
	if e.Count() != 0 {
		t.Errorf("Count = %d after refused records, want 0", e.Count())
	}
}

func zero() float64 { return 0 }

// manyProps is n properties p0..p(n-1), then one more named dup.
func manyProps(n int, dup string) []integration.Prop {
	var ps []integration.Prop
	for i := range n {
		ps = append(ps, integration.Int(fmt.Sprintf("p%d", i), int64(i)))
	}
	return append(ps, integration.Int(dup, 0))
}

// FuzzEmitterLinesParse: whatever the Emitter accepts, ParseRecord (the
// runner's and the platform's check) accepts.
func FuzzEmitterLinesParse(f *testing.F) {
	f.Add("k", "t", "c", "a", "b", "name", "other")
	f.Add("k\x00", "t", "c", "a", "b", "_KEY", "_KEY")
	f.Add(strings.Repeat("k", 1025), "t", "c", "a", "b", "x", "_\u212aey")
	f.Fuzz(func(t *testing.T, key, typ, class, from, to, p1, p2 string) {
		var buf bytes.Buffer
		e := integration.NewEmitter(&buf)
		props := []integration.Prop{integration.String(p1, "v"), integration.Int(p2, 1)}
		if e.Entity(key, typ, class, props...) == nil {
			e.Flush()
			if _, err := integration.ParseRecord(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))); err != nil {
				t.Fatalf("the Emitter wrote %q, which ParseRecord refuses: %v", buf.Bytes(), err)
			}
		}
		buf.Reset()
		if e.Relationship(key, typ, class, from, to, props...) == nil {
			e.Flush()
			if _, err := integration.ParseRecord(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))); err != nil {
				t.Fatalf("the Emitter wrote %q, which ParseRecord refuses: %v", buf.Bytes(), err)
			}
		}
	})
}

func TestParseRecordRefuses(t *testing.T) {
	for _, line := range []string{
		``, `[]`, `{}`, `{"entity":{}}`, `{"entity":{"_key":"k","_type":"t"}}`,
		`{"entity":{"_key":"k","_type":"t","_class":""}}`, `{"entity":{"_key":1,"_type":"t","_class":"c"}}`,
		`{"relationship":{"_key":"k","_type":"t","_class":"c","_fromEntityKey":"a"}}`,
		`{"thing":{"_key":"k","_type":"t","_class":"c"}}`, `{"entity":{"_key":"k","_type":"t","_class":"c"},"x":1}`,
		`{"entity":null}`,
	} {
		if _, err := integration.ParseRecord([]byte(line)); !errors.Is(err, integration.ErrInvalidRecord) {
			t.Errorf("ParseRecord(%s) = %v, want ErrInvalidRecord", line, err)
		}
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(`{"a": 1}`), 0o400)
	var cfg struct{ A int }
	if err := integration.LoadConfig(path, &cfg); err != nil || cfg.A != 1 {
		t.Errorf("LoadConfig = %v, %+v", err, cfg)
	}
	os.WriteFile(path, []byte(`{"b": 1}`), 0o600)
	if err := integration.LoadConfig(path, &cfg); err == nil || !strings.Contains(err.Error(), `unknown field "b"`) {
		t.Errorf("LoadConfig(unknown field) = %v, want an error naming it", err)
	}
	os.WriteFile(path, bytes.Repeat([]byte(" "), integration.MaxConfigBytes+1), 0o600)
	if _, err := integration.ReadConfig(path); err == nil {
		t.Error("ReadConfig(too large) succeeded")
	}
	if _, err := integration.ReadConfig(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadConfig(missing) = %v, want ErrNotExist", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{}`), 0o400)
	var stdout, stderr bytes.Buffer
	code := integration.Run("t", path, &stdout, &stderr, func(ctx context.Context, cfg []byte, out *integration.Emitter, log *slog.Logger) error {
		return out.Entity("k", "t", "c")
	})
	if code != 0 || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("Run(ok) = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code = integration.Run("t", path, &stdout, &stderr, func(ctx context.Context, cfg []byte, out *integration.Emitter, log *slog.Logger) error {
		out.Entity("k", "t", "c")
		return errors.New("boom")
	})
	if code != 1 || !strings.Contains(stderr.String(), "boom") || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("Run(fail) = %d, stdout %q, stderr %q; want 1, the record flushed and the error logged", code, stdout.String(), stderr.String())
	}
	if code := integration.Run("t", path+".missing", &stdout, &stderr, nil); code != integration.ExitBadConfig {
		t.Errorf("Run(missing config) = %d, want %d", code, integration.ExitBadConfig)
	}
}

// FuzzAppendString checks AppendString writes what encoding/json reads back.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00\x1f\x7f", "é\u2028\u2029", "\xff\xfe", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := integration.AppendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if !utf8.ValidString(s) {
			// encoding/json replaces each invalid byte; compare through it.
			j, _ := json.Marshal(s)
			json.Unmarshal(j, &want)
		}
		if got != want {
			t.Fatalf("AppendString(%q) reads back as %q, want %q", s, got, want)
		}
	})
}

// FuzzParseRecord feeds arbitrary lines to the parser the runner uses: it
// must never panic, and what it accepts must carry the required members.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"entity":{"_key":"k","_type":"t","_class":"c","x":1}}`))
	f.Add([]byte(`{"relationship":{"_key":"k","_type":"t","_class":"c","_fromEntityKey":"a","_toEntityKey":"b"}}`))
	f.Add([]byte(`{"entity":{"_key":"","_type":"t"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := integration.ParseRecord(line)
		if err != nil {
			return
		}
		if r.Key == "" || r.Type == "" || r.Class == "" || (r.Kind == integration.KindRelationship && (r.From == "" || r.To == "")) {
			t.Fatalf("accepted %q as %+v", line, r)
		}
	})
}

func BenchmarkEmitterEntity(b *testing.B) {
	w := bufio.NewWriter(discard{})
	e := integration.NewEmitter(w)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Entity("entity-key", "example_entity", "Record", integration.Int("index", int64(i)), integration.String("name", "entity"))
	}
	e.Flush()
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
