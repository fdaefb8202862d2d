// Package files holds the two file operations the collector's and the
// platform's key and state files share: an atomic replacement, and a
// stamp that tells a reader a file changed.
package files

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// WriteAtomic replaces path with data, mode 0600, through a synced
// temporary file in the same directory and a rename: a reader sees the
// old file or the new one, whole, and a crash never leaves half a file.
func WriteAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Stamp identifies the files names of dir as they are now: inode, size
// and modification time of each ("-" for one that is missing). A file
// replaced by a rename gets a new inode, so a reader that keeps the stamp
// reads the files again exactly when one changed.
func Stamp(dir string, names ...string) string {
	var b strings.Builder
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			b.WriteString("-;")
			continue
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(&b, "%d:%d:%d;", ino, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}
