package example_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/integrations/example"
)

// run runs the integration as its main does, on a config file.
func run(t *testing.T, config string) (code int, stdout, stderr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(config), 0o400); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code = integration.Run(example.Name, path, &out, &errb, example.Run)
	return code, out.String(), errb.String()
}

func parse(t *testing.T, stdout string) []*integration.Record {
	t.Helper()
	var recs []*integration.Record
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		r, err := integration.ParseRecord(sc.Bytes())
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestEntitiesAndRelationships(t *testing.T) {
	code, stdout, stderr := run(t, `{"count": 5, "relationships": true, "prefix": "p-"}`)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	recs := parse(t, stdout)
	var ents, rels int
	keys := map[string]bool{}
	for _, r := range recs {
		switch r.Kind {
		case integration.KindEntity:
			ents++
			keys[r.Key] = true
			if !strings.HasPrefix(r.Key, "p-") {
				t.Errorf("key %q lacks the prefix", r.Key)
			}
		case integration.KindRelationship:
			rels++
			if !keys[r.From] || !keys[r.To] {
				t.Errorf("relationship %s joins unknown entities %s → %s", r.Key, r.From, r.To)
			}
		}
	}
	if ents != 5 || rels != 4 {
		t.Errorf("got %d entities, %d relationships; want 5, 4", ents, rels)
	}
	if _, _, err := split(stderr); err != nil {
		t.Errorf("stderr is not JSON log lines: %v", err)
	}
}

func TestNoRelationshipsUnlessAsked(t *testing.T) {
	_, stdout, _ := run(t, `{"count": 3}`)
	if n := strings.Count(stdout, `"relationship"`); n != 0 {
		t.Errorf("%d relationships without relationships: true", n)
	}
	if n := strings.Count(stdout, "\n"); n != 3 {
		t.Errorf("%d records, want 3", n)
	}
}

func TestSecretProofWithoutTheSecret(t *testing.T) {
	const token = "s3cret-token-value"
	code, stdout, stderr := run(t, `{"count": 2, "token": "`+token+`"}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout+stderr, token) {
		t.Fatal("the token appears in the output or the logs")
	}
	var found bool
	for _, r := range parse(t, stdout) {
		if r.Key != example.ProofKey {
			continue
		}
		found = true
		var body struct {
			Type   string `json:"_type"`
			Class  string `json:"_class"`
			SHA256 string `json:"sha256"`
		}
		json.Unmarshal(r.Body, &body)
		if body.Type != example.ProofType || body.Class != "Record" || body.SHA256 != example.TokenProof(token) {
			t.Errorf("proof = %+v, want sha256 %s", body, example.TokenProof(token))
		}
	}
	if !found {
		t.Error("no proof entity")
	}
	if example.TokenProof(token) != "8d4d3fb0d5ae8cb5d6d08ddd7dd91aa7e00ce6f7584c4b3ff8f3fdc2ab5bc86a" && len(example.TokenProof(token)) != 64 {
		t.Error("proof is not a hex SHA-256")
	}
}

func TestFailExitsOneAfterSomeRecords(t *testing.T) {
	code, stdout, stderr := run(t, `{"count": 10, "fail": true}`)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if n := strings.Count(stdout, "\n"); n != 5 {
		t.Errorf("%d records before failing, want 5", n)
	}
	if !strings.Contains(stderr, `"level":"ERROR"`) || !strings.Contains(stderr, "fail: true") {
		t.Errorf("stderr does not log the failure: %s", stderr)
	}
}

func TestSleepRunsLong(t *testing.T) {
	start := time.Now()
	code, _, _ := run(t, `{"count": 1, "sleep_seconds": 0.3}`)
	if d := time.Since(start); code != 0 || d < 300*time.Millisecond {
		t.Errorf("exit %d after %v, want 0 after >= 300ms", code, d)
	}
	// A cancelled run stops sleeping.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := example.Run(ctx, []byte(`{"sleep_seconds": 60}`), integration.NewEmitter(io.Discard), slog.New(slog.DiscardHandler))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled sleep = %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []string{`{"count": -1}`, `{"count": "x"}`, `{"cuont": 3}`, `not json`} {
		if code, _, stderr := run(t, cfg); code != integration.ExitBadConfig || !strings.Contains(stderr, "config") {
			t.Errorf("config %s: exit %d, stderr %s; want %d and an error naming the config", cfg, code, stderr, integration.ExitBadConfig)
		}
	}
}

// TestLoadGeneratorRate checks the integration is fast enough to be a load
// generator: 200,000 entities and relationships in well under a second.
func TestLoadGeneratorRate(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	var n countingWriter
	e := integration.NewEmitter(&n)
	start := time.Now()
	if err := example.Run(context.Background(), []byte(`{"count": 200000, "relationships": true}`), e, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	e.Flush()
	d := time.Since(start)
	t.Logf("400k records, %d MB in %v (%.0f records/s)", n.bytes>>20, d, float64(e.Count())/d.Seconds())
	if d > 5*time.Second {
		t.Errorf("too slow for a load generator: %v", d)
	}
}

func BenchmarkMillionEntities(b *testing.B) {
	for b.Loop() {
		e := integration.NewEmitter(io.Discard)
		if err := example.Run(context.Background(), []byte(`{"count": 1000000}`), e, slog.New(slog.DiscardHandler)); err != nil {
			b.Fatal(err)
		}
		e.Flush()
	}
}

type countingWriter struct{ bytes int }

func (w *countingWriter) Write(p []byte) (int, error) { w.bytes += len(p); return len(p), nil }

func split(s string) (int, []map[string]any, error) {
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			return 0, nil, err
		}
		lines = append(lines, m)
	}
	return len(lines), lines, nil
}
