package integration

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/collectorhq/collector/internal/egressconf"
)

// TestEgressRoutesDefaultTransport: with the runner's egress document, the
// transport sends HTTP requests through the proxy with its credentials,
// except to the no-proxy hosts; what Main logs of the proxy has no
// password; without the document nothing changes; a bad document is an
// error that does not print the password.
func TestEgressRoutesDefaultTransport(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String()+" "+r.Header.Get("Proxy-Authorization"))
		mu.Unlock()
		io.WriteString(w, "via proxy")
	}))
	defer proxy.Close()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "direct") }))
	defer target.Close()

	dir := t.TempDir()
	path := filepath.Join(dir, "egress.json")
	if got, err := useEgress(path, &http.Transport{}); got != "" || err != nil {
		t.Fatalf("without a document: %q, %v; want nothing", got, err)
	}
	doc := egressconf.Job{Proxy: strings.Replace(proxy.URL, "http://", "http://job:s3cret-pr0xy@", 1), NoProxy: []string{"localhost"}}
	b, _ := json.Marshal(doc)
	if err := os.WriteFile(path, b, 0o400); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	shown, err := useEgress(path, tr)
	if err != nil {
		t.Fatal(err)
	}
	if shown != proxy.URL || strings.Contains(shown, "s3cret") {
		t.Errorf("the proxy shown: %q, want %s without the password", shown, proxy.URL)
	}
	c := &http.Client{Transport: tr}
	get := func(url string) string {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(target.URL + "/x"); got != "via proxy" {
		t.Errorf("a request to %s: %q, want it through the proxy", target.URL, got)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("job:s3cret-pr0xy"))
	mu.Lock()
	if len(seen) != 1 || seen[0] != "GET "+target.URL+"/x "+auth {
		t.Errorf("the proxy saw %q, want the GET of %s/x with the credentials", seen, target.URL)
	}
	mu.Unlock()
	bypassed := strings.Replace(target.URL, "127.0.0.1", "localhost", 1)
	if got := get(bypassed); got != "direct" {
		t.Errorf("a request to the no-proxy host %s: %q, want direct", bypassed, got)
	}

	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"proxy":"ftp://u:s3cret-pr0xy@h:1"}`), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := useEgress(filepath.Join(dir, "bad.json"), &http.Transport{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a bad document: %v, want an error without the password", err)
	}
}
