package test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/browsertest"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/platform"
)

// console is a person at the web console in Chromium: every page they saw
// is kept, to look for the secret in all of them.
type console struct {
	*browsertest.Page
	t    *testing.T
	seen []string
}

func (c *console) open(path string) {
	c.t.Helper()
	c.Open(path)
	c.keep()
}

func (c *console) submit(css string) {
	c.t.Helper()
	c.Submit(css)
	c.keep()
}

func (c *console) keep() { c.seen = append(c.seen, c.Path()+"\n"+c.Source()) }

// shot saves a screenshot of the page among the test's artifacts and,
// with COLLECTOR_UPDATE_SCREENSHOTS=1, as the docs' current set.
func (c *console) shot(name string) {
	c.t.Helper()
	path := c.Screenshot(name)
	if env.Get(env.UpdateScreenshots) != "1" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repoRoot(), "docs", "console", name+".png"), b, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// consoleUser creates a user with a password on the platform's host, as
// an operator would (`platform users create --password-stdin`).
func consoleUser(t *testing.T, p *platformProc, login, role, password string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(world.bin, "platform"), "users", "create", "--login", login, "--role", role,
		"--password-stdin", "--data-dir", p.dataDir)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("platform users create: %v\n%s", err, out)
	}
}

// installFromPage installs a collector the way an administrator would:
// the token and the command read from the install page, the command run
// on the host (here: on the test's engine and directories).
func installFromPage(t *testing.T, c *console, k *kit) *host {
	t.Helper()
	token := strings.TrimSpace(c.Text("#enrollment-token"))
	printed := strings.TrimSpace(c.Text("#cmd-" + k.name))
	if token == "" || printed == "" || strings.Contains(printed, token) {
		t.Fatalf("install page: token %q, %s command %q", token, k.name, printed)
	}
	vars := map[string]string{}
	for _, m := range envPair.FindAllStringSubmatch(printed, -1) {
		vars[m[1]] = m[2]
	}
	h := &host{id: vars[env.CollectorID], etc: filepath.Join(t.TempDir(), "etc-collector"), state: filepath.Join(t.TempDir(), "state"), kit: k}
	os.MkdirAll(h.etc, 0o700)
	os.MkdirAll(h.state, 0o700)
	if out, err := h.runInstaller(vars, token); err != nil {
		t.Fatalf("installer: %v\n%s", err, out)
	}
	h.open(t)
	return h
}

// TestConsoleEndToEnd drives the console in Chromium against a real
// platform and real collectors (P9): sign in with a second factor,
// create a collector and install it from the page, see it turn active
// without a reload, create an integration with a secret from its image's
// schema, run it and watch its logs stream, see its entities, move it to
// a second collector (on the other engine) and run it there, delete the
// first collector (refused while it had the integration); axe-core on
// every main page; the secret in no page the browser saw.
func TestConsoleEndToEnd(t *testing.T) {
	need(t)
	browsertest.Need(t)
	const secret = "console-e2e-token-0b7a5c"
	const password = "console e2e admin passphrase 2026"
	p := startPlatform(t)
	consoleUser(t, p, "web-admin", "admin", password)
	b := browsertest.Start(t, browsertest.Options{TrustPEMFiles: []string{
		filepath.Join(p.dataDir, platform.CACertFile), filepath.Join(p.dataDir, platform.ServerCertFile)}})
	c := &console{Page: browsertest.OnSite(b.NewTab(t), p.url), t: t}

	// Sign in; an admin enrols an authenticator app first.
	c.open("/login")
	c.shot("sign-in")
	c.Fill(`input[name=login]`, "web-admin")
	c.Fill(`input[name=password]`, password)
	c.submit(`main button[type=submit]`)
	if path := c.Path(); path != "/mfa/enroll" {
		t.Fatalf("an admin's first sign-in lands on %s, want /mfa/enroll", path)
	}
	c.submit(`form[action="/mfa/enroll/totp"] button`)
	code, err := totp.GenerateCode(strings.TrimSpace(c.Text("#totp-secret")), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.Fill(`input[name=code]`, code)
	c.submit(`form[action="/mfa/enroll/confirm"] button`)
	if !c.Has("#recovery-codes li") {
		t.Fatalf("no recovery codes after enrolment, at %s", c.Path())
	}
	c.submit(`main a.button`)

	// A collector, from the page to the host.
	c.open("/collectors/new")
	c.shot("collector-new")
	c.Fill("#name", "site-podman")
	c.submit(`main button[type=submit]`)
	c.shot("collector-install")
	podmanHost := installFromPage(t, c, podmanKit(t))
	c.open("/collectors")
	status := `tr[data-id="` + podmanHost.id + `"] [data-field=status]`
	c.WaitText(status, "active", 90*time.Second) // live: no reload
	c.shot("collectors")

	// An integration with a secret, its form built from the image's schema.
	c.open("/integrations/new")
	c.Fill("#f-name", "example")
	c.Fill("#f-image", world.exampleImage)
	c.submit(`button[value=check]`)
	if !strings.Contains(c.Text("#image-checked"), "@sha256:") || !c.Has("#config-form #cf-token[type=password]") {
		t.Fatalf("after Check image: %q, form built from the schema: %v", c.Text("#image-checked"), c.Has("#config-form"))
	}
	c.Fill("#f-interval", "86400")
	c.Select("#f-network", "host")
	c.Select("#f-collector", podmanHost.id)
	c.Fill("#cf-count", "25")
	c.Fill("#cf-prefix", "console-")
	c.Fill("#cf-token", secret)
	c.shot("integration-form")
	c.submit(`button[value=save]`)
	if !strings.Contains(c.Path(), "done=saved") {
		t.Fatalf("save: at %s: %s", c.Path(), c.Text("main"))
	}
	intPath := strings.Split(c.Path(), "?")[0]
	if !strings.Contains(c.Text("main"), "token: set") {
		t.Errorf("the integration page does not show the secret field as set")
	}

	// Run it: the job page streams its logs and its state.
	runAndWatch := func(on string) string {
		t.Helper()
		c.open(intPath)
		c.submit(`form[action$="/run"] button`)
		if !strings.HasPrefix(c.Path(), "/jobs/job_") {
			t.Fatalf("run now: at %s", c.Path())
		}
		c.WaitText("#job-state", "succeeded", 3*time.Minute)
		// The finished job's page comes again with its whole outcome.
		c.WaitGone("#job-log[data-events]", 30*time.Second)
		c.keep()
		if !strings.Contains(c.Text(".timeline"), "succeeded") || c.Text("#job-records") == "0" {
			t.Errorf("the finished job's page: timeline %q, records %q", c.Text(".timeline"), c.Text("#job-records"))
		}
		if !strings.Contains(c.Text("#job-log"), "run") || !strings.Contains(c.Text("main"), on) {
			t.Errorf("job page: logs %q, collector %q", c.Text("#job-log"), on)
		}
		return c.Path()
	}
	runAndWatch("site-podman")
	c.shot("job")
	c.open(intPath)
	c.shot("integration")
	c.open("/data?integration=" + strings.TrimPrefix(intPath, "/integrations/"))
	if !strings.Contains(c.Text("#items"), "console-entity-0") {
		t.Fatalf("data page lacks the entities: %s", c.Text("#items"))
	}
	c.shot("data")
	c.open("/data/" + strings.TrimPrefix(intPath, "/integrations/") + "/entity?key=console-entity-1")
	if !strings.Contains(c.Text("#rel-from"), "console-entity-2") || !strings.Contains(c.Text("#rel-to"), "console-entity-0") {
		t.Errorf("entity page: from %q, to %q", c.Text("#rel-from"), c.Text("#rel-to"))
	}
	c.shot("entity")

	// Deleting the collector that has it is refused, naming it.
	c.open("/collectors/" + podmanHost.id + "/delete")
	if !strings.Contains(c.Text("#blockers"), "example") || c.Has(`form[action$="/delete"] button`) {
		t.Errorf("delete while assigned: blockers %q", c.Text("#blockers"))
	}
	refused := browsertest.Run(c.Tab, chromedp.Evaluate[int](`fetch("/collectors/`+podmanHost.id+`/delete", {method: "POST"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if refused != 409 {
		t.Errorf("POST delete while assigned = %d, want 409", refused)
	}

	// A second collector, on Docker; the integration moves there and runs.
	c.open("/collectors/new")
	c.Fill("#name", "site-docker")
	c.submit(`main button[type=submit]`)
	dockerHost := installFromPage(t, c, dockerKit(t))
	c.open("/collectors")
	c.WaitText(`tr[data-id="`+dockerHost.id+`"] [data-field=status]`, "active", 90*time.Second)
	c.open(intPath)
	c.Select(`select[name=collector_id]`, dockerHost.id)
	c.submit(`form[action$="/assign"] button`)
	if !strings.Contains(c.Path(), "done=assigned") {
		t.Fatalf("assign: at %s", c.Path())
	}
	runAndWatch("site-docker")
	c.open("/collectors/" + podmanHost.id + "/delete")
	c.submit(`form[action$="/delete"] button`)
	if c.Has(`tr[data-id="` + podmanHost.id + `"]`) {
		t.Errorf("the first collector is still listed after its deletion")
	}

	// A viewer reads every page but sees no control that changes anything,
	// and a post it makes anyway is refused.
	consoleUser(t, p, "web-viewer", "viewer", password)
	v := &console{Page: browsertest.OnSite(b.NewTab(t), p.url), t: t}
	v.open("/login")
	v.Fill(`input[name=login]`, "web-viewer")
	v.Fill(`input[name=password]`, password)
	v.submit(`main button[type=submit]`)
	for _, path := range []string{"/", "/collectors", "/collectors/" + dockerHost.id, "/integrations", intPath, "/jobs", "/data", "/audit"} {
		v.open(path)
		src := v.Source()
		for _, control := range []string{"New collector", "New integration", "Run now", "Delete…", `/edit"`, "New enrollment token", `/assign"`, "Cancel the job"} {
			if strings.Contains(src, control) {
				t.Errorf("the viewer's %s shows %q", path, control)
			}
		}
	}
	if st := browsertest.Run(v.Tab, chromedp.Evaluate[int](`fetch("`+intPath+`/run", {method: "POST"}).then(r => r.status)`, chromedp.EvalAwaitPromise)); st != 403 {
		t.Errorf("the viewer's POST run = %d, want 403", st)
	}

	// A page of another site that posts to the console in the admin's
	// browser: refused before any handler; no job.
	jobs := func() int {
		var l api.JobList
		p.cliJSON(&l, "jobs", "list", "--integration", strings.TrimPrefix(intPath, "/integrations/"))
		return len(l.Jobs)
	}
	before := jobs()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>prize</title><form id="f" method="post" action="%s%s/run"></form><script>document.getElementById("f").submit()</script>`, p.url, intPath)
	}))
	defer evil.Close()
	c.Load(chromedp.Navigate(evil.URL))
	c.WaitText("body", "cross-origin", 30*time.Second)
	if after := jobs(); after != before {
		t.Errorf("a post from another site ran the integration: %d jobs, then %d", before, after)
	}

	// Every main page: axe-core finds nothing critical or serious.
	for _, pg := range []struct{ name, path string }{
		{"overview", "/"}, {"collectors", "/collectors"}, {"collector", "/collectors/" + dockerHost.id},
		{"collector-new", "/collectors/new"}, {"integrations", "/integrations"}, {"integration", intPath},
		{"integration-edit", intPath + "/edit"}, {"jobs", "/jobs"}, {"data", "/data"}, {"audit", "/audit"},
		{"users", "/users"}, {"account", "/account"},
	} {
		c.open(pg.path)
		if v := c.Axe(); len(v) > 0 {
			t.Errorf("axe on %s (%s): %v", pg.name, pg.path, v)
		}
		switch pg.name {
		case "overview", "integrations", "collector", "jobs", "audit", "users":
			c.shot(pg.name)
		}
	}

	// The secret went into a form once and never came back.
	for _, s := range append(c.seen, v.seen...) {
		if strings.Contains(s, secret) {
			t.Errorf("the secret is in a page the browser saw: %s", strings.SplitN(s, "\n", 2)[0])
		}
	}
	if len(c.seen) < 20 {
		t.Errorf("only %d pages were looked at for the secret", len(c.seen))
	}
}
