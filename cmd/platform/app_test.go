package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/env"

	"github.com/collectorhq/collector/platform"

	_ "modernc.org/sqlite"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/platform/platformtest"
)

// run runs the CLI in-process against e and returns stdout and the exit code.
func run(t *testing.T, e *platformtest.Env, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &out
	full := append([]string{"platform"}, args...)
	if len(args) >= 2 && args[0] != "serve" {
		full = append(full, "--server", e.URL)
		if !strings.Contains(strings.Join(args, " "), "--data-dir") {
			full = append(full, "--data-dir", e.DataDir)
		}
		if !strings.Contains(strings.Join(args, " "), "--token") {
			full = append(full, "--token", e.AdminToken)
		}
	}
	err := app.RunContext(context.Background(), full)
	if err != nil {
		out.WriteString("error: " + err.Error())
	}
	return out.String(), cliutil.Code(err, classify)
}

func runJSON(t *testing.T, e *platformtest.Env, v any, args ...string) {
	t.Helper()
	out, code := run(t, e, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func TestCollectorsCommands(t *testing.T) {
	e := platformtest.Start(t)
	var g api.EnrollmentGrant
	runJSON(t, e, &g, "collectors", "create", "--pool", "dc1", "edge one")
	if g.Collector.Name != "edge one" || g.Collector.Pool != "dc1" || g.EnrollmentToken == "" || g.InstallCommands.Podman == "" {
		t.Fatalf("create: %+v", g)
	}
	out, code := run(t, e, "collectors", "create", "human")
	if code != 0 || !strings.Contains(out, "Enrollment token") || !strings.Contains(out, "sudo podman run") ||
		!strings.Contains(out, "paste it when the installer asks") {
		t.Errorf("human create output (exit %d):\n%s", code, out)
	}
	out, code = run(t, e, "collectors", "list")
	if code != 0 || !strings.Contains(out, "STATUS") || !strings.Contains(out, g.Collector.ID) || !strings.Contains(out, "pending") {
		t.Errorf("list (exit %d):\n%s", code, out)
	}
	var list api.CollectorList
	runJSON(t, e, &list, "collectors", "list")
	if len(list.Collectors) != 2 {
		t.Errorf("list --json: %d collectors", len(list.Collectors))
	}
	var g2 api.EnrollmentGrant
	runJSON(t, e, &g2, "collectors", "token", g.Collector.ID)
	if g2.EnrollmentToken == g.EnrollmentToken {
		t.Errorf("token: same token")
	}
	// Enroll with the new token, then show it.
	key, hk := platformtest.NewKeys(t)
	cl := api.NewCollectorClient(e.URL, g.Collector.ID, key, "", e.HTTP)
	if _, err := cl.Enroll(context.Background(), api.EnrollRequest{CollectorID: g.Collector.ID, Token: g2.EnrollmentToken,
		IdentityPublicKey: key.Public().(ed25519.PublicKey), HPKEPublicKey: hk.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, e, "collectors", "show", g.Collector.ID)
	if code != 0 || !strings.Contains(out, "Identity key:") || !strings.Contains(out, "offline") {
		t.Errorf("show (exit %d):\n%s", code, out)
	}
	// set-pool, its flag after the ID as people write it; without --pool
	// it is a usage error, --pool "" takes it out.
	var moved api.Collector
	runJSON(t, e, &moved, "collectors", "set-pool", g.Collector.ID, "--pool", "dc2")
	if moved.Pool != "dc2" {
		t.Errorf("set-pool: pool %q, want dc2", moved.Pool)
	}
	if out, code := run(t, e, "collectors", "set-pool", g.Collector.ID); code != cliutil.ExitUsage || !strings.Contains(out, "--pool is required") {
		t.Errorf("set-pool without --pool: exit %d: %s", code, out)
	}
	var out2 api.Collector
	runJSON(t, e, &out2, "collectors", "set-pool", g.Collector.ID, "--pool", "")
	if out2.ID != g.Collector.ID || out2.Pool != "" {
		t.Errorf("set-pool --pool \"\": %+v", out2)
	}
	if out, code = run(t, e, "collectors", "delete", g.Collector.ID); code != 0 {
		t.Errorf("delete: exit %d %s", code, out)
	}
	if out, code = run(t, e, "collectors", "show", g.Collector.ID); code != cliutil.ExitNotFound {
		t.Errorf("show deleted: exit %d, want %d: %s", code, cliutil.ExitNotFound, out)
	}
	if _, code = run(t, e, "collectors", "show"); code != cliutil.ExitUsage {
		t.Errorf("show without ID: exit %d, want %d", code, cliutil.ExitUsage)
	}
}

func TestIntegrationsCommands(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	b := e.EnrollNew(t, "b")
	cfgFile := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfgFile, []byte(`{"url":"https://api.example","api_key":"sk-live-abcdef123456"}`), 0o600)
	var in api.Integration
	runJSON(t, e, &in, "integrations", "create", "--name", "crm", "--image", "localhost/crm:1",
		"--config-file", cfgFile, "--secret-field", "api_key", "--interval", "30m", "--collector", a.ID)
	if in.IntervalSec != 1800 || in.CollectorID != a.ID || strings.Contains(string(in.Config), "sk-live") {
		t.Fatalf("create: %+v %s", in, in.Config)
	}
	out, code := run(t, e, "integrations", "show", in.ID)
	if code != 0 || !strings.Contains(out, api.SecretMask) || strings.Contains(out, "sk-live") {
		t.Errorf("show (exit %d):\n%s", code, out)
	}
	// Delete is refused while assigned, naming the integration.
	out, code = run(t, e, "collectors", "delete", a.ID)
	if code != cliutil.ExitConflict || !strings.Contains(out, "crm") {
		t.Errorf("delete assigned collector: exit %d, want %d:\n%s", code, cliutil.ExitConflict, out)
	}
	var moved api.Integration
	runJSON(t, e, &moved, "integrations", "assign", in.ID, "--collector", b.ID)
	if moved.CollectorID != b.ID {
		t.Errorf("assign: %+v", moved)
	}
	var up api.Integration
	runJSON(t, e, &up, "integrations", "update", in.ID, "--interval", "2h", "--config", `{"url":"https://api2.example","api_key":"********"}`)
	if up.IntervalSec != 7200 || !strings.Contains(string(up.Config), "api2") {
		t.Errorf("update: %+v %s", up, up.Config)
	}
	out, code = run(t, e, "integrations", "list")
	if code != 0 || !strings.Contains(out, "crm") || !strings.Contains(out, "2h0m0s") {
		t.Errorf("list (exit %d):\n%s", code, out)
	}
	if _, code = run(t, e, "integrations", "create", "--name", "bad", "--image", "localhost/x:1", "--config", "[1]"); code != cliutil.ExitUsage {
		t.Errorf("bad config: exit %d, want %d", code, cliutil.ExitUsage)
	}
	if out, code = run(t, e, "integrations", "delete", in.ID); code != 0 {
		t.Errorf("delete: exit %d %s", code, out)
	}
	if _, code = run(t, e, "collectors", "delete", a.ID); code != 0 {
		t.Errorf("delete unassigned collector: exit %d", code)
	}
}

func TestAuditCommands(t *testing.T) {
	e := platformtest.Start(t)
	run(t, e, "collectors", "create", "one")
	run(t, e, "collectors", "create", "two")
	run(t, e, "collectors", "create", "three")
	out, code := run(t, e, "audit", "list")
	if code != 0 || strings.Count(out, "collector.created") != 3 {
		t.Errorf("audit list (exit %d):\n%s", code, out)
	}
	var l api.AuditList
	runJSON(t, e, &l, "audit", "list", "--after", "1", "--limit", "1")
	if len(l.Entries) != 1 || l.Entries[0].Seq != 2 {
		t.Errorf("audit list --after 1 --limit 1: %+v", l)
	}
	if out, code = run(t, e, "audit", "verify"); code != 0 || !strings.Contains(out, "OK: 5 entries") { // 2 from the harness's admin
		t.Errorf("verify (exit %d): %s", code, out)
	}
	db, err := sql.Open("sqlite", e.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'mallory' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, e, "audit", "verify")
	if code == 0 || !strings.Contains(out, "seq 2") {
		t.Errorf("verify after tampering (exit %d): %s", code, out)
	}
}

func TestExitCodes(t *testing.T) {
	e := platformtest.Start(t)
	if _, code := run(t, e, "collectors", "list", "--token", "cadm_wrong"); code != cliutil.ExitAuth {
		t.Errorf("wrong token: exit %d, want %d", code, cliutil.ExitAuth)
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no `platform login` token
	if _, code := run(t, e, "collectors", "list", "--token", "", "--ca-file", filepath.Join(e.DataDir, "ca.crt")); code != cliutil.ExitAuth {
		t.Errorf("no token: exit %d, want %d", code, cliutil.ExitAuth)
	}
	if _, code := run(t, e, "integrations", "show", "int_"+strings.Repeat("a", 26)); code != cliutil.ExitNotFound {
		t.Errorf("missing integration: exit %d, want %d", code, cliutil.ExitNotFound)
	}
	e.Stop()
	if out, code := run(t, e, "collectors", "list"); code != cliutil.ExitUnavailable {
		t.Errorf("server down: exit %d, want %d: %s", code, cliutil.ExitUnavailable, out)
	}
	if _, code := run(t, e, "collectors", "frobnicate", "x"); code == 0 {
		t.Errorf("unknown subcommand: exit 0")
	}
	if _, code := run(t, e, "serve", "--listen", "nonsense", "--data-dir", t.TempDir()); code != cliutil.ExitUsage {
		t.Errorf("serve with a bad --listen: exit %d, want %d", code, cliutil.ExitUsage)
	}
}

// TestServeCommand starts `platform serve` in-process and stops it the way
// SIGTERM does (main cancels the context): it must return cleanly.
func TestServeCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	go func() {
		done <- app.RunContext(ctx, []string{"platform", "--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--data-dir", dir})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, platform.SetupLinkFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not write the setup link")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestAuditVerifyExpect: `audit verify` prints the head to save and
// `--expect` checks it.
func TestAuditVerifyExpect(t *testing.T) {
	e := platformtest.Start(t)
	run(t, e, "collectors", "create", "one")
	out, code := run(t, e, "audit", "verify")
	if code != 0 || !strings.Contains(out, "--expect ") {
		t.Fatalf("verify (exit %d):\n%s", code, out)
	}
	head := strings.Fields(out[strings.Index(out, "--expect ")+len("--expect "):])[0]
	head = strings.TrimSuffix(head, "`")
	if out, code := run(t, e, "audit", "verify", "--expect", head); code != 0 {
		t.Errorf("verify --expect %s (exit %d):\n%s", head, code, out)
	}
	if out, code := run(t, e, "audit", "verify", "--expect", "99:"+strings.Repeat("0", 64)); code == 0 {
		t.Errorf("verify against a head past the end passed:\n%s", out)
	}
}

// TestBackupWhileRunning: `platform backup` copies the database of a
// running platform; the copy opens as a store with everything in it.
func TestBackupWhileRunning(t *testing.T) {
	e := platformtest.Start(t)
	var g api.EnrollmentGrant
	runJSON(t, e, &g, "collectors", "create", "kept")
	dest := filepath.Join(t.TempDir(), "backup.db")
	backup := func() (string, int) {
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &out
		err := app.RunContext(context.Background(), []string{"platform", "backup", "--data-dir", e.DataDir, dest})
		return out.String(), cliutil.Code(err, classify)
	}
	out, code := backup()
	if code != 0 {
		t.Fatalf("backup (exit %d):\n%s", code, out)
	}
	if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v", st, err)
	}
	db, err := sql.Open("sqlite", "file:"+dest+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	if err := db.QueryRow(`SELECT name FROM collectors WHERE id = ?`, g.Collector.ID).Scan(&name); err != nil || name != "kept" {
		t.Errorf("collector in the backup: %q, %v", name, err)
	}
	if _, code := backup(); code == 0 {
		t.Error("a backup over an existing file was allowed")
	}
}

// TestUsersBreakGlass: `platform users` works on the host's data dir with
// the platform running, and is audited as break-glass.
func TestUsersBreakGlass(t *testing.T) {
	e := platformtest.Start(t)
	host := func(stdin string, args ...string) (string, int) {
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter, app.Reader = &out, &out, strings.NewReader(stdin)
		err := app.RunContext(context.Background(), append([]string{"platform", "users"}, append(args, "--data-dir", e.DataDir)...))
		if err != nil {
			out.WriteString("error: " + err.Error())
		}
		return out.String(), cliutil.Code(err, classify)
	}
	out, code := host("a passphrase the operator chose\n", "create", "--login", "Olga", "--role", "operator", "--password-stdin", "--token", "automation")
	if code != 0 || !strings.Contains(out, "User olga created") || !strings.Contains(out, "cpat_") {
		t.Fatalf("users create (exit %d):\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tok := strings.TrimSpace(lines[len(lines)-1])
	if out, code := run(t, e, "collectors", "create", "from-automation", "--token", tok); code != 0 {
		t.Errorf("the printed token does not work (exit %d):\n%s", code, out)
	}
	if out, code := host("", "list"); code != 0 || !strings.Contains(out, "olga") || !strings.Contains(out, "operator") {
		t.Errorf("users list (exit %d):\n%s", code, out)
	}
	if out, code := host("", "disable", "olga"); code != 0 {
		t.Fatalf("users disable (exit %d):\n%s", code, out)
	}
	if _, code := run(t, e, "collectors", "list", "--token", tok); code != cliutil.ExitAuth {
		t.Errorf("a disabled user's token: exit %d, want %d", code, cliutil.ExitAuth)
	}
	if out, code := host("", "reset-mfa", platformtest.AdminLogin); code != 0 {
		t.Errorf("reset-mfa (exit %d):\n%s", code, out)
	}
	if out, code := host("", "set-role", "olga", "superuser"); code != cliutil.ExitUsage {
		t.Errorf("a role that does not exist: exit %d:\n%s", code, out)
	}
	var l api.AuditList
	runJSON(t, e, &l, "audit", "list")
	n := 0
	for _, en := range l.Entries {
		if strings.HasPrefix(en.Actor, "break-glass:") {
			n++
		}
	}
	if n < 4 {
		t.Errorf("%d break-glass acts audited, want the create, token, disable and reset", n)
	}
	// The last act (reset-mfa) moved the checkpoint to the chain's head: a
	// database writer deleting it from the chain's end is noticed.
	head, err := e.Store.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(filepath.Join(e.DataDir, platform.AuditCheckpointFile))
	if want := fmt.Sprintf("%d:%s", head.Seq, head.Hash); err != nil || strings.TrimSpace(string(cp)) != want {
		t.Errorf("audit checkpoint %q (%v), want the head after the break-glass acts, %s", cp, err, want)
	}
}

// TestTokensAndLogin: `platform tokens` and `platform login` (device flow,
// approved from a browser session of the user).
func TestTokensAndLogin(t *testing.T) {
	e := platformtest.Start(t)
	var tok api.CreatedToken
	runJSON(t, e, &tok, "tokens", "create", "ci-job", "--role", "viewer", "--ttl", "24h")
	if tok.Role != "viewer" || !strings.HasPrefix(tok.Token, "cpat_") {
		t.Fatalf("tokens create: %+v", tok)
	}
	if out, code := run(t, e, "collectors", "create", "x", "--token", tok.Token); code == 0 {
		t.Errorf("a viewer token created a collector:\n%s", out)
	}
	out, code := run(t, e, "tokens", "list")
	if code != 0 || !strings.Contains(out, "ci-job") || strings.Contains(out, tok.Token) {
		t.Errorf("tokens list (exit %d):\n%s", code, out)
	}
	if out, code := run(t, e, "tokens", "revoke", tok.ID); code != 0 {
		t.Fatalf("revoke (exit %d):\n%s", code, out)
	}
	if _, code := run(t, e, "collectors", "list", "--token", tok.Token); code != cliutil.ExitAuth {
		t.Errorf("revoked token: exit %d", code)
	}

	// platform login: the CLI prints the URL; a browser signed in as a
	// viewer approves; the CLI stores the token 0600.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	admin := api.NewAdminClient(e.URL, e.AdminToken, e.HTTP)
	if _, err := admin.CreateUser(context.Background(), api.CreateUserRequest{Login: "vic", Password: "a viewer passphrase, long enough", Role: "viewer"}); err != nil {
		t.Fatal(err)
	}
	outc := make(chan string, 1)
	pr, pw := io.Pipe()
	go func() {
		app := newApp()
		var buf bytes.Buffer
		app.Writer = io.MultiWriter(&buf, pw)
		app.ErrWriter = &buf
		err := app.RunContext(context.Background(), []string{"platform", "login", "--server", e.URL, "--data-dir", e.DataDir})
		if err != nil {
			buf.WriteString("error: " + err.Error())
		}
		pw.Close()
		outc <- buf.String()
	}()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	u := strings.Fields(line)[1]
	code2 := u[strings.Index(u, "code=")+5:]
	go io.Copy(io.Discard, pr)
	if err := approveDevice(e, "vic", "a viewer passphrase, long enough", code2); err != nil {
		t.Fatal(err)
	}
	got := <-outc
	if !strings.Contains(got, "Signed in") {
		t.Fatalf("login:\n%s", got)
	}
	path := filepath.Join(env.Get(env.XDGConfigHome), "collector-platform", "token")
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", st, err)
	}
	full := []string{"platform", "collectors", "list", "--server", e.URL, "--data-dir", e.DataDir, "--json"}
	var buf bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &buf, &buf
	if err := app.RunContext(context.Background(), full); err != nil {
		t.Fatalf("a command with the stored token: %v\n%s", err, buf.String())
	}
}

// approveDevice signs login in through the API with a cookie jar and
// approves the device's code, as the /device page does.
func approveDevice(e *platformtest.Env, login, pw, code string) error {
	jar, _ := cookiejar.New(nil)
	hc := *e.HTTP
	hc.Jar = jar
	post := func(path string, v any) error {
		b, _ := json.Marshal(v)
		resp, err := hc.Post(e.URL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s: %d", path, resp.StatusCode)
		}
		return nil
	}
	if err := post(api.PathLogin, api.LoginRequest{Login: login, Password: pw}); err != nil {
		return err
	}
	return post(api.PathDeviceApprove, api.DeviceApproveRequest{UserCode: code})
}
