package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// keysCLI runs `platform keys SUB ARGS --data-dir` on e's data directory
// and returns its output and exit code.
func keysCLI(e *platformtest.Env, sub string) func(args ...string) (string, int) {
	return func(args ...string) (string, int) {
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &out
		err := app.RunContext(context.Background(), append(append([]string{"platform", "keys", sub}, args...), "--data-dir", e.DataDir))
		if err != nil {
			out.WriteString("error: " + err.Error())
		}
		return out.String(), cliutil.Code(err, classify)
	}
}

// TestKeysSigningCommands: docs/auth.md §8.1 through the CLI, on a
// running platform: announce, a switch too early refused, switch --force
// taken by the running server, status.
func TestKeysSigningCommands(t *testing.T) {
	e := platformtest.Start(t)
	signing := keysCLI(e, "signing")
	old := crypto.Fingerprint(e.Server.SigningPublicKey())
	out, code := signing("announce")
	if code != 0 || !strings.Contains(out, "Announced signing key sha256:") {
		t.Fatalf("announce (exit %d):\n%s", code, out)
	}
	if out, code := signing("announce"); code != cliutil.ExitConflict {
		t.Errorf("a second announce (exit %d, want %d):\n%s", code, cliutil.ExitConflict, out)
	}
	if out, code := signing("switch"); code != cliutil.ExitConflict || !strings.Contains(out, "--force") {
		t.Errorf("switch right after the announce (exit %d, want %d):\n%s", code, cliutil.ExitConflict, out)
	}
	out, code = signing("switch", "--force", "--grace", "2h")
	if code != 0 || !strings.Contains(out, "collectors accept key "+old+" until") {
		t.Fatalf("switch (exit %d):\n%s", code, out)
	}
	var st platform.SigningStatus
	out, code = signing("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Previous != old || st.Next != "" || st.PreviousUntil == nil {
		t.Fatalf("status (exit %d, %v):\n%s", code, err, out)
	}
	if now := crypto.Fingerprint(e.Server.SigningPublicKey()); now != st.Current || now == old {
		t.Errorf("the running platform signs with %s, want %s", now, st.Current)
	}
}
