package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestKeysCACommands: docs/auth.md's CA rotation through the CLI, on a
// running platform: announce, a switch too early refused, switch --force
// taken by the running server (new enrollment tokens carry the new pin),
// status.
func TestKeysCACommands(t *testing.T) {
	e := platformtest.Start(t)
	ca := keysCLI(e, "ca")
	old := e.Server.CAPin()
	out, code := ca("announce")
	if code != 0 || !strings.Contains(out, "Announced CA sha256:") {
		t.Fatalf("announce (exit %d):\n%s", code, out)
	}
	if out, code := ca("announce"); code != cliutil.ExitConflict {
		t.Errorf("a second announce (exit %d, want %d):\n%s", code, cliutil.ExitConflict, out)
	}
	if out, code := ca("switch"); code != cliutil.ExitConflict || !strings.Contains(out, "--force") {
		t.Errorf("switch right after the announce (exit %d, want %d):\n%s", code, cliutil.ExitConflict, out)
	}
	out, code = ca("switch", "--force", "--grace", "2h")
	if code != 0 || !strings.Contains(out, "collectors accept CA "+old+" until") {
		t.Fatalf("switch (exit %d):\n%s", code, out)
	}
	// The CLI trusts the data directory's current and previous CA,
	// whichever the platform serves: at once, before the platform looks at
	// the files again, and below once it serves the new one.
	admin := func(when string) {
		t.Helper()
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &out
		if err := app.RunContext(context.Background(), []string{"platform", "collectors", "list", "--server", e.URL,
			"--data-dir", e.DataDir, "--token", e.AdminToken}); err != nil {
			t.Errorf("an admin command %s: %v\n%s", when, err, out.String())
		}
	}
	admin("right after the switch")
	var st platform.CAStatus
	out, code = ca("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Previous != old || st.Next != "" || st.PreviousUntil == nil || st.Current == old {
		t.Fatalf("status (exit %d, %v):\n%s", code, err, out)
	}
	// The running platform serves the new CA from its next handshakes
	// (it looks at the files once a second).
	deadline := time.Now().Add(10 * time.Second)
	for e.Server.CAPin() != st.Current && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := e.Server.CAPin(); got != st.Current {
		t.Errorf("the running platform's CA pin is %s, want %s", got, st.Current)
	}
	admin("once the new CA is served")
}
