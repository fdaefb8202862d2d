package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestKeysCommands: the procedure of docs/auth.md §6.1 through the CLI, on
// a running platform: add, promote, rotate (twice), status, remove.
func TestKeysCommands(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "data-keys")
	keys := func(args ...string) (string, int) {
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &out
		err := app.RunContext(context.Background(), append([]string{"platform", "keys"}, args...))
		if err != nil {
			out.WriteString("error: " + err.Error())
		}
		return out.String(), cliutil.Code(err, classify)
	}
	out, code := keys("add", "--data-key-file", keyFile)
	if code != 0 || !strings.Contains(out, "Added key") {
		t.Fatalf("keys add (exit %d):\n%s", code, out)
	}
	e := platformtest.Start(t, func(c *platform.Config) { c.DataKeyFile = keyFile })
	e.EnrollNew(t, "c1")
	host := []string{"--data-dir", e.DataDir, "--data-key-file", keyFile}

	var before platform.KeyReport
	out, code = keys(append([]string{"status", "--json"}, host...)...)
	if err := json.Unmarshal([]byte(out), &before); code != 0 || err != nil || len(before.Keys) != 1 || before.Behind() != 0 {
		t.Fatalf("keys status (exit %d, %v):\n%s", code, err, out)
	}
	old := before.Keys[0]

	out, code = keys("add", "--data-key-file", keyFile)
	if code != 0 || !strings.Contains(out, "keys promote") {
		t.Fatalf("keys add (exit %d):\n%s", code, out)
	}
	fresh := strings.Fields(strings.TrimPrefix(out, "Added key "))[0]
	if out, code := keys("promote", "nosuchkey", "--data-key-file", keyFile); code == 0 || !strings.Contains(out, old) {
		t.Errorf("promote an unknown key (exit %d):\n%s", code, out)
	}
	if out, code := keys("promote", fresh, "--data-key-file", keyFile); code != 0 {
		t.Fatalf("keys promote (exit %d):\n%s", code, out)
	}
	e = e.Restart(t)

	out, code = keys(append([]string{"status"}, host...)...)
	if code != 0 || !strings.Contains(out, fresh+" (current)") || !strings.Contains(out, "run `platform keys rotate`") {
		t.Errorf("keys status before the rotation (exit %d):\n%s", code, out)
	}
	out, code = keys(append([]string{"rotate", "--batch", "2"}, host...)...)
	if code != 0 || !strings.Contains(out, "Everything is under key "+fresh) || strings.Contains(out, "Moved 0 ") {
		t.Fatalf("keys rotate (exit %d):\n%s", code, out)
	}
	if out, code := keys(append([]string{"rotate"}, host...)...); code != 0 || !strings.Contains(out, "Moved 0 values") {
		t.Errorf("second keys rotate (exit %d):\n%s", code, out)
	}
	if out, code := keys("remove", fresh, "--data-key-file", keyFile); code == 0 {
		t.Errorf("removed the current key (exit %d):\n%s", code, out)
	}
	if out, code := keys("remove", old, "--data-key-file", keyFile); code != 0 {
		t.Fatalf("keys remove (exit %d):\n%s", code, out)
	}
	e = e.Restart(t)
	if out, code := run(t, e, "audit", "verify"); code != 0 {
		t.Errorf("audit verify after the rotation (exit %d):\n%s", code, out)
	}
	if out, code := run(t, e, "collectors", "list"); code != 0 || !strings.Contains(out, "c1") {
		t.Errorf("collectors list after the rotation (exit %d):\n%s", code, out)
	}
}
