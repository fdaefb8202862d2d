package files_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/internal/files"
)

// TestWriteAtomicAndStamp: a replaced file is whole, 0600, no temporary
// file is left, and the stamp changes with it (and with a missing file).
func TestWriteAtomicAndStamp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	missing := files.Stamp(dir, "k")
	if err := files.WriteAtomic(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	first := files.Stamp(dir, "k")
	if err := files.WriteAtomic(path, []byte("two")); err != nil {
		t.Fatal(err)
	}
	second := files.Stamp(dir, "k")
	b, err := os.ReadFile(path)
	fi, _ := os.Stat(path)
	des, _ := os.ReadDir(dir)
	if err != nil || string(b) != "two" || fi.Mode().Perm() != 0o600 || len(des) != 1 {
		t.Fatalf("after two writes: %q, %v, mode %v, %d entries in the dir", b, err, fi.Mode().Perm(), len(des))
	}
	if missing == first || first == second || files.Stamp(dir, "k") != second {
		t.Errorf("stamps missing %q, first %q, second %q: want each change seen and nothing else", missing, first, second)
	}
}
