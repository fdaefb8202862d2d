package egressconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadJob: the runner's document is read with fields a newer runner
// may add; none is no error; a bad proxy is refused without its
// password; a document past the bound is refused.
func TestReadJob(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o400); err != nil {
			t.Fatal(err)
		}
		return p
	}
	j, err := ReadJob(write("newer.json", `{"proxy":"http://u:pw@proxy:3128","no_proxy":["10.0.0.0/8"],"socks":"later"}`))
	if err != nil || j == nil || j.Proxy != "http://u:pw@proxy:3128" || j.Password() != "pw" || len(j.NoProxy) != 1 {
		t.Errorf("a newer runner's document: %+v, %v", j, err)
	}
	if j, err := ReadJob(filepath.Join(dir, "absent.json")); j != nil || err != nil {
		t.Errorf("no document: %+v, %v; want nil, nil", j, err)
	}
	if _, err := ReadJob(write("bad.json", `{"proxy":"socks5://u:s3cret@proxy:1080"}`)); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a bad proxy: %v, want an error without the password", err)
	}
	if _, err := ReadJob(write("big.json", `{"proxy":"http://proxy:3128","extra_ca":"`+strings.Repeat("A", MaxJobSize)+`"}`)); err == nil {
		t.Error("a document over the bound was read")
	}
}
