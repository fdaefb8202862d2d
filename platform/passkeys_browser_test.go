package platform_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/browsertest"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/platformtest"
)

// passkeyPlatform starts a platform whose public URL is
// https://localhost:<port> (browsers refuse an IP address as a WebAuthn
// relying party), reached through a TCP relay on that port, as a load
// balancer in front of it would be, and a Chromium that trusts its CA.
func passkeyPlatform(t *testing.T) (*platformtest.Env, *browsertest.Browser, string) {
	t.Helper()
	browsertest.Need(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	public := "https://localhost:" + port
	e := platformtest.Start(t, func(c *platform.Config) { c.PublicURL = public })
	relay(t, ln, e.Config.Listen)
	if strings.Contains(e.Logs.String(), "passkeys are off") {
		t.Fatalf("passkeys are off at %s:\n%s", public, e.Logs.String())
	}
	b := browsertest.Start(t, browsertest.Options{TrustPEMFiles: []string{
		filepath.Join(e.DataDir, platform.CACertFile), filepath.Join(e.DataDir, platform.ServerCertFile)}})
	return e, b, public
}

// relay copies TCP connections from ln to addr (TLS passes through) until
// the test ends; every goroutine is joined then.
func relay(t *testing.T, ln net.Listener, addr string) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			track(in)
			track(out)
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// device is one person's browser: a tab in its own browser context with a
// platform authenticator (a CDP virtual one: CTAP2, internal, resident
// keys, user verification).
type device struct {
	t    *testing.T
	tab  *browsertest.Tab
	auth *browsertest.Authenticator
	url  string
}

func newDevice(t *testing.T, b *browsertest.Browser, url string) *device {
	tab := b.NewTab(t)
	return &device{t: t, tab: tab, auth: tab.AddAuthenticator(browsertest.PlatformAuthenticator()), url: url}
}

// load runs trigger and waits for the page it leads to.
func (d *device) load(trigger chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	if _, err := browsertest.TryRun(d.tab, chromedp.WaitEvent(page.LoadEventFired, nil, trigger)); err != nil {
		d.t.Fatalf("%v (page %s says %q)", err, d.path(), d.text("#passkey-error"))
	}
}

func (d *device) open(path string) { d.t.Helper(); d.load(chromedp.Navigate(d.url + path)) }

func (d *device) path() string {
	return browsertest.Run(d.tab, chromedp.Evaluate[string](`location.pathname + location.search`))
}

// text returns the text of the first element matching css ("" if none).
func (d *device) text(css string) string {
	v, _ := json.Marshal(css)
	return browsertest.Run(d.tab, chromedp.Evaluate[string](`(e => e ? e.textContent : "")(document.querySelector(`+string(v)+`))`))
}

// signIn signs in with a password from the sign-in page.
func (d *device) signIn(login, password string) {
	d.t.Helper()
	d.open("/login")
	d.tab.Do(chromedp.SendKeys(chromedp.CSS(`input[name=login]`), login), chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password))
	d.load(chromedp.Click(chromedp.CSS(`main button[type=submit]`)))
}

func (d *device) signOut() {
	d.t.Helper()
	d.load(chromedp.Click(chromedp.CSS(`header form[action="/logout"] button`)))
	if p := d.path(); !strings.HasPrefix(p, "/login") {
		d.t.Fatalf("after signing out: %s", p)
	}
}

// button waits for a passkey button whose handler is bound.
func (d *device) button(id string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`#` + id + `[data-ready="true"]`))
}

// refusal clicks the passkey button and returns what #passkey-error says.
func (d *device) refusal(id string) string {
	d.t.Helper()
	d.tab.Do(d.button(id), chromedp.Click(chromedp.ID(id)))
	return browsertest.Run(d.tab, chromedp.Poll[string](`document.getElementById("passkey-error").textContent`))
}

// codes returns the recovery codes the page lists.
func (d *device) codes() []string {
	d.t.Helper()
	d.tab.Do(chromedp.WaitVisible(chromedp.CSS(`#recovery-codes li`)))
	return browsertest.Run(d.tab, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#recovery-codes li")].map(li => li.textContent)`))
}

// audits returns the details of the audit events of action on target.
func audits(t *testing.T, e *platformtest.Env, action, target string) []map[string]any {
	t.Helper()
	es, err := e.Store.AuditEntries(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, en := range es {
		if en.Action == action && en.Target == target {
			var d map[string]any
			json.Unmarshal([]byte(en.Details), &d)
			out = append(out, d)
		}
	}
	return out
}

// forgedAssertion is what a client that ignores the platform's options
// does: it drops allowCredentials, so the authenticator answers with
// whatever passkey it holds for the site, and posts that to finish.
const forgedAssertion = `(async () => {
  const dec = s => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), c => c.charCodeAt(0));
  const enc = b => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const post = (u, body) => fetch(u, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const opts = (await (await post("/api/v1/auth/mfa/passkey/begin", {})).json()).publicKey;
  opts.challenge = dec(opts.challenge);
  delete opts.allowCredentials;
  const c = await navigator.credentials.get({publicKey: opts});
  const r = c.response;
  const res = await post("/api/v1/auth/mfa/passkey/finish", {credential: {id: c.id, rawId: enc(c.rawId), type: c.type,
    clientExtensionResults: {}, response: {clientDataJSON: enc(r.clientDataJSON), authenticatorData: enc(r.authenticatorData),
    signature: enc(r.signature), userHandle: r.userHandle ? enc(r.userHandle) : undefined}}});
  const me = await (await fetch("/api/v1/me")).json();
  return {status: res.status, code: (await res.json()).error?.code ?? "", stage: me.stage};
})()`

// TestPasskeysInChromium is the passkey test that matters: real Chromium,
// a CDP virtual authenticator per device, the real platform over HTTPS.
// An admin's first sign-in lands on the enrolment page; a click on "Add a
// passkey" registers one and shows the recovery codes; after signing out,
// the password then a click on "Use a passkey" sign in. Bob's passkey
// cannot stand in for the admin's, neither through the page nor with a
// forged client; a cloned authenticator is refused; and the passkey
// gives the step-up a destructive page asks for.
func TestPasskeysInChromium(t *testing.T) {
	e, b, public := passkeyPlatform(t)
	admin, err := e.Store.UserByLogin(ctx, platformtest.AdminLogin)
	if err != nil {
		t.Fatal(err)
	}

	// A ceremony belongs to a browser session: an API token runs none.
	tok := newBrowser(t, e)
	tok.hdr["Authorization"] = "Bearer " + e.AdminToken
	if st, code := tok.do("POST", platform.PathMFAPasskeyBegin, nil, nil); st != http.StatusBadRequest || code != api.CodeInvalidRequest {
		t.Errorf("begin with an API token: %d %s, want 400", st, code)
	}

	// Enrolment at the first sign-in.
	ann := newDevice(t, b, public)
	ann.signIn(platformtest.AdminLogin, platformtest.AdminPassword)
	if p := ann.path(); p != "/mfa/enroll" {
		t.Fatalf("an admin's first sign-in lands on %s, want /mfa/enroll", p)
	}
	ann.tab.Do(ann.button("passkey-register"))
	ann.tab.Screenshot("1-enrol")
	ann.tab.Do(chromedp.SendKeys(chromedp.ID("passkey-name"), "ann's laptop"), chromedp.Click(chromedp.ID("passkey-register")))
	codes := ann.codes()
	ann.tab.Screenshot("2-recovery-codes")
	if len(codes) != 10 {
		t.Fatalf("recovery codes shown: %q", codes)
	}
	creds := ann.auth.Credentials()
	if len(creds) != 1 || creds[0].RpID != "localhost" || !creds[0].IsResidentCredential || strings.Contains(string(creds[0].UserHandle), admin.ID) {
		t.Fatalf("ann's authenticator holds %+v: want one resident passkey for localhost, with a random user handle", creds)
	}
	pks, err := e.Store.Passkeys(ctx, admin.ID)
	if err != nil || len(pks) != 1 || pks[0].Name != "ann's laptop" || string(pks[0].CredentialID) != string(creds[0].CredentialID) {
		t.Fatalf("stored passkeys = %+v, %v", pks, err)
	}
	if evs := audits(t, e, "user.mfa_enrolled", admin.ID); len(evs) != 1 || evs[0]["factor"] != "passkey" {
		t.Errorf("enrolment audit = %v", evs)
	}
	ann.load(chromedp.Click(chromedp.ID("passkey-continue")))
	if got := ann.text("main dl"); !strings.Contains(got, "1 passkey(s)") || !strings.Contains(got, "10 recovery codes left") {
		t.Errorf("account page says %q", got)
	}

	// Sign out, sign in: the password, then the passkey.
	ann.signOut()
	ann.signIn(platformtest.AdminLogin, platformtest.AdminPassword)
	if p := ann.path(); !strings.HasPrefix(p, "/login/mfa") {
		t.Fatalf("second sign-in lands on %s, want /login/mfa", p)
	}
	ann.tab.Do(ann.button("passkey-login"))
	ann.tab.Screenshot("3-second-factor")
	ann.load(chromedp.Click(chromedp.ID("passkey-login")))
	// The home page answers only a full session (a partial one is sent to
	// /login/mfa); the header names who is signed in.
	if p, who := ann.path(), ann.text("header .who span"); p != "/" || !strings.Contains(who, platformtest.AdminLogin) {
		t.Fatalf("after the passkey: %s, signed in as %q; want the home page of %s", p, who, platformtest.AdminLogin)
	}
	if evs := audits(t, e, "user.mfa_verified", admin.ID); len(evs) != 2 || evs[1]["factor"] != "passkey" {
		t.Errorf("verification audits = %v, want the enrolment's then the passkey's", evs)
	}

	// Bob, an operator, adds his own passkey from his own browser.
	bobPassword := createUser(t, e, "bob", access.RoleOperator)
	bob := newDevice(t, b, public)
	bob.signIn("bob", bobPassword)
	bob.open("/mfa/enroll")
	bob.tab.Do(bob.button("passkey-register"), chromedp.Click(chromedp.ID("passkey-register")))
	if got := bob.codes(); len(got) != 10 {
		t.Fatalf("bob's recovery codes: %q", got)
	}

	// Someone with the admin's password and Bob's device: the page asks
	// for the admin's passkeys only, which the device does not hold...
	bob.signOut()
	bob.signIn(platformtest.AdminLogin, platformtest.AdminPassword)
	if msg := bob.refusal("passkey-login"); !strings.Contains(msg, "no passkey of this account") {
		t.Errorf("the admin's sign-in on bob's device says %q", msg)
	}
	bob.tab.Screenshot("4-other-users-passkey")
	// ...and a client that asks the device for any passkey gets Bob's,
	// which the platform refuses: the session still waits for its factor.
	var forged struct {
		Status      int
		Code, Stage string
	}
	raw := browsertest.Run(bob.tab, chromedp.Evaluate[[]byte](forgedAssertion, chromedp.EvalAwaitPromise))
	if err := json.Unmarshal(raw, &forged); err != nil {
		t.Fatalf("forged assertion: %s: %v", raw, err)
	}
	if forged.Status != http.StatusUnauthorized || forged.Code != api.CodeSecondFactor || forged.Stage != access.StageMFA {
		t.Errorf("bob's passkey for the admin: %+v, want 401 %s and the session still at %q", forged, api.CodeSecondFactor, access.StageMFA)
	}
	if !failedBecause(t, e, admin.ID, "not registered to this user") {
		t.Errorf("no user.mfa_failed audit for bob's passkey: %v", audits(t, e, "user.mfa_failed", admin.ID))
	}

	// A clone of the admin's passkey (its key copied to another device,
	// the counter behind the original's) is refused and audited.
	orig := ann.auth.Credentials()[0]
	clone := newDevice(t, b, public)
	clone.auth.AddCredential(&cdpwebauthn.Credential{CredentialID: orig.CredentialID, IsResidentCredential: true, RpID: orig.RpID,
		PrivateKey: orig.PrivateKey, UserHandle: orig.UserHandle, SignCount: 0})
	clone.signIn(platformtest.AdminLogin, platformtest.AdminPassword)
	if msg := clone.refusal("passkey-login"); !strings.Contains(msg, "counter went backwards") {
		t.Errorf("a cloned passkey (original's counter %v) says %q", orig.SignCount, msg)
	}
	if !failedBecause(t, e, admin.ID, "may be cloned") {
		t.Errorf("no user.mfa_failed audit for the clone: %v", audits(t, e, "user.mfa_failed", admin.ID))
	}

	// Step-up: once the second factor is old, a destructive page (new
	// recovery codes) sends the browser to confirm it; the passkey does,
	// and the browser comes back to the page.
	e.Clock.Advance(e.Config.Access.StepUp + time.Minute)
	ann.open("/account/recovery-codes")
	if p := ann.path(); !strings.HasPrefix(p, "/login/mfa?next=") {
		t.Fatalf("a destructive page with an old factor: %s, want the second-factor page", p)
	}
	ann.tab.Do(ann.button("passkey-login"))
	ann.load(chromedp.Click(chromedp.ID("passkey-login")))
	if p := ann.path(); p != "/account/recovery-codes" {
		t.Fatalf("after the step-up: %s", p)
	}
	ann.load(chromedp.Click(chromedp.CSS(`main form[action="/account/recovery-codes"] button`)))
	if fresh := ann.codes(); len(fresh) != 10 || fresh[0] == codes[0] {
		t.Errorf("new recovery codes after the step-up: %q", fresh)
	}
	if n := ann.auth.Credentials()[0].SignCount; n < 2 {
		t.Errorf("the authenticator's counter is %v after two sign-ins", n)
	}

	// With the step-up fresh, the API's removal (a destructive act) runs,
	// and keeps an admin's last second factor.
	del := func(id string) int {
		v, _ := json.Marshal(platform.PathPasskeys + "/" + id)
		return browsertest.Run(ann.tab, chromedp.Evaluate[int](`fetch(`+string(v)+`, {method: "DELETE"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	}
	if st := del(pks[0].ID); st != http.StatusConflict {
		t.Errorf("removing the admin's last passkey: %d, want 409", st)
	}
	if st := del("pk_nosuch"); st != http.StatusNotFound {
		t.Errorf("removing a passkey that is not the admin's: %d, want 404", st)
	}
}

func failedBecause(t *testing.T, e *platformtest.Env, userID, reason string) bool {
	for _, d := range audits(t, e, "user.mfa_failed", userID) {
		if r, _ := d["reason"].(string); strings.Contains(r, reason) && d["factor"] == "passkey" {
			return true
		}
	}
	return false
}

// TestPasskeysNeedAHostNameURL: on a platform whose public URL is an IP
// address, the ceremonies say what to change; an API token cannot run
// one (a ceremony belongs to a browser session); listing works.
func TestPasskeysNeedAHostNameURL(t *testing.T) {
	e := platformtest.Start(t)
	if !strings.Contains(e.Logs.String(), "passkeys are off") {
		t.Error("no warning that passkeys are off for an IP-address URL")
	}
	pw := createUser(t, e, "viewer", access.RoleViewer)
	br := newBrowser(t, e)
	if st, code := br.do("POST", api.PathLogin, api.LoginRequest{Login: "viewer", Password: pw}, nil); st != 200 {
		t.Fatalf("sign in: %d %s", st, code)
	}
	if st, code := br.do("POST", platform.PathPasskeysBegin, nil, nil); st != http.StatusConflict || code != api.CodeConflict {
		t.Errorf("begin on an IP-address URL: %d %s, want 409", st, code)
	}
	var list platform.PasskeyList
	if st, _ := br.do("GET", platform.PathPasskeys, nil, &list); st != 200 || list.Passkeys == nil {
		t.Errorf("list: %d %+v", st, list)
	}
}
