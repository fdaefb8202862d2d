package pgtest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/collectorhq/collector/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Each test gets its own database on the binary's one server, on 127.0.0.1.
func TestNewDB(t *testing.T) {
	u1, u2 := pgtest.NewDB(t), pgtest.NewDB(t)
	if u1 == u2 {
		t.Fatalf("two databases with one URL %s", u1)
	}
	if !strings.HasPrefix(u1, "postgres://postgres@127.0.0.1:") {
		t.Errorf("URL %s, want one on 127.0.0.1", u1)
	}
	s := pgtest.Shared(t)
	out, err := s.Exec("postgres", "SHOW fsync")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "off" {
		t.Errorf("fsync = %q, want off (tests only)", out)
	}
}
