package egress

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// TestBypass: the no-proxy list matches names (and their subdomains),
// .suffixes (subdomains only), IPs, CIDRs, ports and *.
func TestBypass(t *testing.T) {
	list := []string{"internal.example", ".corp.example", "10.0.0.0/8", "192.0.2.7", "registry.example:5000", "[::1]", " "}
	for _, c := range []struct {
		host, port string
		want       bool
	}{
		{"internal.example", "443", true},
		{"a.b.internal.example", "443", true},
		{"INTERNAL.example.", "443", true},
		{"notinternal.example", "443", false},
		{"corp.example", "443", false},
		{"x.corp.example", "443", true},
		{"10.1.2.3", "443", true},
		{"11.1.2.3", "443", false},
		{"192.0.2.7", "80", true},
		{"192.0.2.8", "80", false},
		{"registry.example", "5000", true},
		{"registry.example", "443", false},
		{"::1", "443", true},
		{"127.0.0.1", "443", false}, // loopback is proxied unless listed
		{"localhost", "443", false},
	} {
		if got := Bypass(list, c.host, c.port); got != c.want {
			t.Errorf("Bypass(%s:%s) = %v, want %v", c.host, c.port, got, c.want)
		}
	}
	if !Bypass([]string{"*"}, "anything.example", "443") {
		t.Error("* does not match everything")
	}
	if Bypass(nil, "anything.example", "443") {
		t.Error("an empty list matches")
	}
}

// TestProxyFunc: the transport's proxy function sends loopback hosts
// through the proxy (http.ProxyFromEnvironment does not), and the no-proxy
// hosts, with the scheme's default port, directly.
func TestProxyFunc(t *testing.T) {
	p, err := Settings{Proxy: "http://u:pw@127.0.0.1:3128", NoProxy: []string{"direct.example", "127.0.0.2:443"}}.ParseProxy()
	if err != nil {
		t.Fatal(err)
	}
	f := p.Func()
	for _, c := range []struct {
		url   string
		proxy bool
	}{
		{"https://127.0.0.1:8443/api", true},
		{"https://platform.example/api", true},
		{"https://direct.example/v2/", false},
		{"https://127.0.0.2/v2/", false}, // :443 by default
		{"http://127.0.0.2/v2/", true},   // :80
		{"https://127.0.0.2:444/v2/", true},
	} {
		u, _ := url.Parse(c.url)
		got, err := f(&http.Request{URL: u})
		if err != nil {
			t.Fatal(err)
		}
		if (got != nil) != c.proxy || got != nil && got.String() != "http://u:pw@127.0.0.1:3128" {
			t.Errorf("%s: proxy %v, want proxied %v", c.url, got, c.proxy)
		}
	}
	none, err := Settings{}.ParseProxy()
	if err != nil || none != nil {
		t.Fatalf("no proxy: %v %v", none, err)
	}
	if none.ForURL(&url.URL{Scheme: "https", Host: "x"}) != nil {
		t.Error("a nil proxy proxies")
	}
}

// TestParseProxyURL: http and https with a host; nothing else; errors
// never hold the password.
func TestParseProxyURL(t *testing.T) {
	for _, ok := range []string{"http://proxy:3128", "https://u:p@proxy.example:8443", "http://[::1]:3128/"} {
		if _, err := ParseProxyURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"socks5://u:SECRET@h:1", "proxy:3128", "http://u:SECRET@/", "http://u:SECRET@h:1/x", "http://u:SECRET@h:1?q", "http://u:SECRET@h:bad port", "ftp://h"} {
		_, err := ParseProxyURL(bad)
		if err == nil {
			t.Errorf("%s: accepted", bad)
		} else if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error shows the password: %v", bad, err)
		}
	}
	if got := Redact("http://alice:SECRET@proxy:3128"); got != "http://alice:***@proxy:3128" {
		t.Errorf("Redact = %s", got)
	}
	if got := Redact("http://proxy:3128"); got != "http://proxy:3128" {
		t.Errorf("Redact without credentials = %s", got)
	}
}

// TestExtraCA: a bundle must hold a certificate.
func TestExtraCA(t *testing.T) {
	if err := (Settings{ExtraCA: []byte("junk")}).Validate(); err == nil {
		t.Error("junk CA accepted")
	}
	if err := (Settings{}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestParseMirrors: PREFIX=LOCATION[,LOCATION] entries separated by ';'
// or newlines; a malformed entry is an error naming it.
func TestParseMirrors(t *testing.T) {
	got, err := ParseMirrors(" quay.io=mirror.corp:5000/quay, backup.corp/quay ;\nregistry.example/team=mirror.corp:5000/team;")
	if err != nil {
		t.Fatal(err)
	}
	want := []Mirror{{Prefix: "quay.io", Locations: []string{"mirror.corp:5000/quay", "backup.corp/quay"}},
		{Prefix: "registry.example/team", Locations: []string{"mirror.corp:5000/team"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMirrors = %+v, want %+v", got, want)
	}
	if m, err := ParseMirrors(""); err != nil || m != nil {
		t.Errorf("ParseMirrors(\"\") = %v, %v; want none", m, err)
	}
	for _, bad := range []string{"quay.io", "quay.io=", "=mirror.corp", "quay.io=https://mirror.corp", "quay.io=mirror corp",
		"quay.io=mirror.corp/", `quay.io=mirror"corp`, "quay.io=user@mirror.corp", "quay.io=mirror.corp\x1b[31m"} {
		if _, err := ParseMirrors(bad); err == nil {
			t.Errorf("ParseMirrors(%q) passed", bad)
		}
	}
	if err := (Settings{Mirrors: []Mirror{{Prefix: "quay.io"}}}).Validate(); err == nil {
		t.Error("Validate passed a mirror without a location")
	}
}

// FuzzParseMirrors: any input parses or fails cleanly; what parses
// validates, and has no character that could break out of the
// registries.conf string it is written into.
func FuzzParseMirrors(f *testing.F) {
	f.Add("quay.io=mirror.corp:5000/quay,backup/quay;docker.io=m/hub")
	f.Add("a=b\nc=d")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMirrors(s)
		if err != nil {
			return
		}
		for _, m := range ms {
			if err := m.Validate(); err != nil {
				t.Fatalf("parsed %+v does not validate: %v", m, err)
			}
			for _, l := range append([]string{m.Prefix}, m.Locations...) {
				if strings.ContainsAny(l, "\"\\\n\r") {
					t.Fatalf("location %q could break the TOML string", l)
				}
			}
		}
	})
}
