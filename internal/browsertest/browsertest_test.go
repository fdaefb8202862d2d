package browsertest_test

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/collectorhq/collector/internal/browsertest"
)

// page serves a page whose script registers a passkey for rp "localhost"
// and writes the outcome into #out.
const page = `<!doctype html><title>t</title><p id="out">waiting</p><script>
navigator.credentials.create({publicKey: {
  rp: {id: "localhost", name: "t"}, user: {id: new Uint8Array(16), name: "u", displayName: "u"},
  challenge: new Uint8Array(32), pubKeyCredParams: [{type: "public-key", alg: -7}],
  authenticatorSelection: {residentKey: "required", userVerification: "required"}}})
 .then(c => { document.getElementById("out").textContent = "created " + c.type; })
 .catch(e => { document.getElementById("out").textContent = "refused " + e.name; });
</script>`

// TestVirtualAuthenticator: a page on localhost registers a passkey with
// the tab's virtual authenticator, which then holds it; a tab in another
// browser context has no authenticator, and the page's call fails there.
func TestVirtualAuthenticator(t *testing.T) {
	b := browsertest.Start(t, browsertest.Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, page) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "http://localhost:" + port + "/" // localhost is a secure context

	tab := b.NewTab(t)
	auth := tab.AddAuthenticator(browsertest.PlatformAuthenticator())
	tab.Do(chromedp.Navigate(url))
	got := browsertest.Run(tab, chromedp.Poll[string](`(t => t.startsWith("waiting") ? "" : t)(document.getElementById("out").textContent)`))
	if got != "created public-key" {
		t.Errorf("page says %q, want a created credential", got)
	}
	if creds := auth.Credentials(); len(creds) != 1 || creds[0].RpID != "localhost" || !creds[0].IsResidentCredential {
		t.Errorf("authenticator holds %+v, want one resident credential for localhost", creds)
	}
	shot := tab.Screenshot("virtual-authenticator")
	if raw, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(raw, []byte("\x89PNG")) {
		t.Errorf("screenshot %s: %v, not a PNG", shot, err)
	}

	// Another tab is another browser: its own authenticator and cookies.
	tab.Do(chromedp.Evaluate[chromedp.Void](`document.cookie = "who=first"`))
	other := b.NewTab(t)
	auth2 := other.AddAuthenticator(browsertest.PlatformAuthenticator())
	other.Do(chromedp.Navigate(url), chromedp.Poll[chromedp.Void](`!document.getElementById("out").textContent.startsWith("waiting")`))
	if c := browsertest.Run(other, chromedp.Evaluate[string](`document.cookie`)); c != "" {
		t.Errorf("the other tab sees the cookies %q of the first", c)
	}
	c1, c2 := auth.Credentials(), auth2.Credentials()
	if len(c1) != 1 || len(c2) != 1 || bytes.Equal(c1[0].CredentialID, c2[0].CredentialID) {
		t.Errorf("authenticators hold %d and %d credentials, want one each, distinct", len(c1), len(c2))
	}
}

// TestTrustPEMFiles: an HTTPS server with a private CA loads only when the
// browser is told to trust its key, and is then a secure context.
func TestTrustPEMFiles(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `<p id="ok">ok</p>`) }))
	defer srv.Close()
	pemFile := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	untrusting := browsertest.Start(t, browsertest.Options{}).NewTab(t)
	if err := untrusting.Try(chromedp.Navigate(srv.URL)); err == nil || !strings.Contains(err.Error(), "CERT") {
		t.Errorf("an untrusted certificate: %v, want a certificate error", err)
	}
	tab := browsertest.Start(t, browsertest.Options{TrustPEMFiles: []string{pemFile}}).NewTab(t)
	tab.Do(chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("ok")))
	if !browsertest.Run(tab, chromedp.Evaluate[bool](`window.isSecureContext`)) {
		t.Error("a page with a trusted key is no secure context")
	}
}

// TestMissingBrowser: a missing browser is named, with the package to
// install.
func TestMissingBrowser(t *testing.T) {
	t.Setenv(browsertest.EnvChromium, "/nonexistent/chromium")
	if err := browsertest.Installed(); err == nil || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Errorf("Installed() = %v", err)
	}
}
