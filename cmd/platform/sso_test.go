package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/oidctest"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestSSOCommands: `platform sso` on the host while the platform runs:
// set (the secret from stdin, the provider checked), show (never the
// secret), link, disable; the running server follows; every act audited
// as break-glass.
func TestSSOCommands(t *testing.T) {
	e := platformtest.Start(t)
	idp := oidctest.Start(t, oidctest.Config{RedirectURI: e.URL + platform.PathSSOCallback})
	caFile := filepath.Join(t.TempDir(), "idp-ca.pem")
	if err := os.WriteFile(caFile, idp.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	sso := func(stdin string, args ...string) (string, int) {
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter, app.Reader = &out, &out, strings.NewReader(stdin)
		err := app.RunContext(context.Background(), append([]string{"platform", "sso"}, append(args, "--data-dir", e.DataDir, "--public-url", e.URL)...))
		if err != nil {
			out.WriteString("error: " + err.Error())
		}
		return out.String(), cliutil.Code(err, classify)
	}
	if out, code := sso("", "show"); code != 0 || !strings.Contains(out, "false") || !strings.Contains(out, e.URL+platform.PathSSOCallback) {
		t.Errorf("show before (exit %d):\n%s", code, out)
	}
	set := []string{"set", "--issuer", idp.Issuer, "--client-id", idp.ClientID, "--client-secret-stdin", "--ca-file", caFile,
		"--group-role", "ops=operator", "--group-role", "root=admin", "--allowed-domain", "example.com"}
	if out, code := sso("", append(set[:5:5], "--ca-file", caFile, "--group-role", "ops=operator")...); code != cliutil.ExitUsage || !strings.Contains(out, "client-secret") {
		t.Errorf("set without a secret (exit %d):\n%s", code, out)
	}
	if out, code := sso(idp.ClientSecret+"\n", "set", "--client-secret", idp.ClientSecret); code == 0 || !strings.Contains(out, "not defined") {
		t.Errorf("a secret on the command line: exit %d, want refused:\n%s", code, out)
	}
	if out, code := sso(idp.ClientSecret+"\n", append(set, "--group-role", "x=root")...); code != cliutil.ExitUsage {
		t.Errorf("a role that does not exist (exit %d):\n%s", code, out)
	}
	out, code := sso(idp.ClientSecret+"\n", set...)
	if code != 0 || !strings.Contains(out, e.URL+platform.PathSSOCallback) {
		t.Fatalf("set (exit %d):\n%s", code, out)
	}
	out, code = sso("", "show", "--json")
	var v platform.SSOSettingsView
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || !v.Enabled || v.ClientSecret != "set" || v.GroupRoles["root"] != "admin" ||
		v.Issuer != idp.Issuer || strings.Contains(out, idp.ClientSecret) {
		t.Errorf("show --json (exit %d, %v):\n%s", code, err, out)
	}
	if out, _ := sso("", "show"); strings.Contains(out, idp.ClientSecret) || !strings.Contains(out, "ops=operator, root=admin") {
		t.Errorf("show:\n%s", out)
	}
	// The running server reads the new settings.
	resp, err := e.HTTP.Get(e.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), platform.PathSSOLogin) {
		t.Error("the running platform does not offer single sign-on after `sso set`")
	}
	// A change keeps what is not given, the secret included.
	if out, code := sso("", "set", "--required-claim", "tenant=t1"); code != 0 {
		t.Errorf("set one field (exit %d):\n%s", code, out)
	}
	if out, code := sso("", "set", "--issuer", "https://127.0.0.1:1", "--client-secret-stdin"); code != cliutil.ExitUnavailable && code != cliutil.ExitUsage {
		t.Errorf("an issuer that does not answer (exit %d):\n%s", code, out)
	}
	if out, code := sso("", "link", "nobody", "sub-1"); code != cliutil.ExitNotFound {
		t.Errorf("link an unknown login (exit %d):\n%s", code, out)
	}
	if out, code := sso("", "link", platformtest.AdminLogin, "sub-admin"); code != 0 || !strings.Contains(out, "linked") {
		t.Errorf("link (exit %d):\n%s", code, out)
	}
	if out, code := sso("", "disable"); code != 0 {
		t.Errorf("disable (exit %d):\n%s", code, out)
	}
	if out, code := sso("", "disable"); code != cliutil.ExitNotFound {
		t.Errorf("disable twice (exit %d):\n%s", code, out)
	}
	var l api.AuditList
	runJSON(t, e, &l, "audit", "list")
	acts := map[string]int{}
	for _, en := range l.Entries {
		if strings.HasPrefix(en.Actor, "break-glass:") {
			acts[en.Action]++
		}
		if strings.Contains(string(en.Details), idp.ClientSecret) {
			t.Errorf("the client secret is in the audit log: %s", en.Details)
		}
	}
	if acts["sso.settings_changed"] != 2 || acts["sso.disabled"] != 1 || acts["user.sso_linked"] != 1 {
		t.Errorf("break-glass acts audited: %v", acts)
	}
}
