package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/platformtest"
	"github.com/collectorhq/collector/platform/store"
)

// Strings a collector or an integration could send to take over the
// administrator's terminal: clear screen, an OSC 8 hyperlink, BEL, a C1
// CSI in one character, a right-to-left override.
const (
	clearScreen = "\x1b[2J\x1b[H"
	hyperlink   = "\x1b]8;;https://evil.example/\x1b\\innocent\x1b]8;;\x1b\\"
	bell        = "ding\a"
	c1CSI       = "\u009b31mred"
	rlo         = "file\u202egnp.exe"
)

var hostile = clearScreen + hyperlink + bell + c1CSI + rlo

// TestOutputEscapesControls: whatever a collector or an integration
// reports, no command prints a character a terminal would act on, in
// tables, key/value views, job logs or --json; --json still carries the
// exact value.
func TestOutputEscapesControls(t *testing.T) {
	ctx := context.Background()
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "edge")
	// The API refuses them in a heartbeat (400)...
	err := c.Client.Heartbeat(ctx, api.Heartbeat{Version: "1.0 " + hostile, RunnerState: api.RunnerRunning})
	if api.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "version must be printable text on one line") {
		t.Errorf("heartbeat with control characters: %v, want 400 naming the version", err)
	}
	// ...but a platform upgraded from an older version may still hold
	// them, and the CLI does not trust its store either.
	db, err := sql.Open("sqlite", e.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE collectors SET name = ? WHERE id = ?`, "edge "+hostile, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.RecordHeartbeat(ctx, c.ID, store.Heartbeat{At: time.Now(), Version: "1.0 " + hostile,
		EngineKind: "podman" + clearScreen, EngineVer: "5" + c1CSI, RunnerState: "running" + rlo}, 10); err != nil {
		t.Fatal(err)
	}
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "crm", Image: "localhost/crm:1",
		Config: json.RawMessage(`{"note":"` + c1CSI + rlo + `\u001b[2J"}`), IntervalSec: api.MaxIntervalSec, CollectorID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	job := runHostileJob(t, e, c, in.ID)

	var all strings.Builder
	for _, args := range [][]string{
		{"collectors", "list"}, {"collectors", "show", c.ID},
		{"integrations", "list"}, {"integrations", "show", in.ID},
		{"jobs", "list"}, {"jobs", "show", job}, {"jobs", "logs", job},
		{"entities", "list", "--integration", in.ID}, {"relationships", "list", "--integration", in.ID},
		{"audit", "list"},
	} {
		for _, js := range []bool{false, true} {
			a := args
			if js {
				a = append(append([]string(nil), args...), "--json")
			}
			out, code := run(t, e, a...)
			if code != 0 {
				t.Errorf("%v: exit %d:\n%s", a, code, out)
			}
			if bad := rawControl(out); bad != "" {
				t.Errorf("%v prints %s raw:\n%q", a, bad, out)
			}
			if js && !json.Valid([]byte(out)) {
				t.Errorf("%v: not JSON:\n%s", a, out)
			}
			all.WriteString(out)
		}
	}
	// So do errors, which can quote what was sent.
	out, code := run(t, e, "collectors", "show", "col_"+clearScreen)
	if bad := rawControl(out); code == 0 || bad != "" {
		t.Errorf("show a malformed ID: exit %d, prints %s:\n%q", code, bad, out)
	}
	// The escapes show what was there.
	for _, want := range []string{`\x1b[2J`, `\x1b]8;;https://evil.example/`, `ding\x07`, `\u009b31mred`, `file\u202egnp.exe`} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no command shows %s", want)
		}
	}
	// --json still carries the exact values.
	var col api.Collector
	runJSON(t, e, &col, "collectors", "show", c.ID)
	if col.Name != "edge "+hostile || col.LastHeartbeat == nil || col.LastHeartbeat.RunnerState != "running"+rlo {
		t.Errorf("collectors show --json = %+v", col)
	}
	var items api.ItemList
	runJSON(t, e, &items, "entities", "list", "--integration", in.ID)
	if len(items.Entities) != 1 || items.Entities[0].Key != "k"+hostile {
		t.Errorf("entities list --json = %+v", items)
	}
}

// runHostileJob runs a job of integrationID as c whose records, logs and
// error carry the hostile strings, and returns its ID.
func runHostileJob(t *testing.T, e *platformtest.Env, c *platformtest.Collector, integrationID string) string {
	t.Helper()
	ctx := context.Background()
	job, err := e.Admin.RunIntegration(ctx, integrationID)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Client.Next(ctx, api.NextRequest{WaitSeconds: 5})
	if err != nil || l == nil || l.JobID != job.ID {
		t.Fatalf("next = %+v, %v; want job %s", l, err, job.ID)
	}
	if err := c.Client.MarkRunning(ctx, l.JobID, l.LeaseID); err != nil {
		t.Fatal(err)
	}
	key, _ := json.Marshal("k" + hostile)
	val, _ := json.Marshal(hostile)
	records := `{"entity":{"_key":` + string(key) + `,"_type":"t` + rlo + `","_class":"C` + c1CSI + `","note":` + string(val) + "}}\n" +
		`{"relationship":{"_key":"r","_type":"t","_class":"HAS","_fromEntityKey":` + string(key) + `,"_toEntityKey":"b` + rlo + "\"}}\n"
	if res, err := c.Client.UploadRecords(ctx, l.JobID, l.LeaseID, 1, []byte(records)); err != nil || res.Accepted != 2 {
		t.Fatalf("upload records = %+v, %v", res, err)
	}
	if err := c.Client.UploadLogs(ctx, l.JobID, l.LeaseID, 1, []byte("starting\n"+hostile+"\r\x1b[Aover\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, ExitCode: 1, Error: "failed: " + hostile,
		Batches: 1, Records: 2}); err != nil {
		t.Fatal(err)
	}
	return job.ID
}

// rawControl names the first character in out a terminal would act on
// (newline and tab aside), or "".
func rawControl(out string) string {
	for i, r := range out {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(out[i:], "\ufffd"):
			return fmt.Sprintf("the invalid UTF-8 byte %#x", out[i])
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			return fmt.Sprintf("the control character %U", r)
		case r == '\u2028' || r == '\u2029' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') ||
			r == '\u200e' || r == '\u200f' || r == '\u061c':
			return fmt.Sprintf("the bidi or separator character %U", r)
		}
	}
	return ""
}
