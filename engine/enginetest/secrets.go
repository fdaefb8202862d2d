package enginetest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/collectorhq/collector/internal/env"

	"github.com/collectorhq/collector/engine"
)

// testSecretNeverOnDisk: a secret, and a container that mounts it and ran,
// leave the value nowhere on the engine's disk, in clear or in base64.
func (s *suite) testSecretNeverOnDisk(t *testing.T) {
	if len(s.o.StorageDirs) == 0 {
		t.Fatal("Options.StorageDirs is empty: the case would prove nothing")
	}
	ctx := ctxT(t)
	raw := make([]byte, 24)
	rand.Read(raw)
	value := []byte("never-on-disk-" + hex.EncodeToString(raw))
	name := uniq("disk")
	if err := s.eng.CreateSecret(ctx, name, value); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	t.Cleanup(func() { s.eng.RemoveSecret(ctx, name) })
	// The container proves it read the value by its hash alone: a value
	// printed would be in the engine's log of the container, on disk.
	sp := s.spec(uniq("disk"), "sh", "-c", "sha256sum /run/collector/config.json; ls -ln /run/collector/config.json >&2")
	sp.Secrets = []engine.SecretMount{{Name: name, Target: "/run/collector/config.json", Mode: 0o400, UID: 1000, GID: 1000}}
	sp.User = "1000:1000"
	sp.ReadOnlyRootfs = true
	sp.CapDrop = []string{"ALL"}
	code, out, errs := s.run(t, sp) // the container stays until the test ends
	sum := sha256.Sum256(value)
	if code != 0 || !strings.HasPrefix(out, hex.EncodeToString(sum[:])) {
		t.Fatalf("reading the secret as uid 1000: exit %d, stdout %q, stderr %q; want the value's SHA-256", code, out, errs)
	}
	if f := strings.Fields(errs); len(f) < 4 || f[0] != "-r--------" || f[2] != "1000" || f[3] != "1000" {
		t.Errorf("secret file: %q, want -r-------- owned by 1000:1000", errs)
	}
	if found := FindInFiles(s.o.StorageDirs, Encodings(value)...); len(found) > 0 {
		t.Errorf("the secret's value is on the engine's disk, in %s", strings.Join(found, ", "))
	}
}

// testSecretDirNotTmpfs: a secret dir on a disk is refused, saying what
// to do, and nothing is written there.
func (s *suite) testSecretDirNotTmpfs(t *testing.T) {
	parent := diskDir(t, s.o.StorageDirs)
	dir := filepath.Join(parent, "secrets") // not made yet: the refusal must not make it
	eng, err := s.o.WithSecretDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	err = eng.CreateSecret(ctxT(t), uniq("refused"), []byte("not-on-disk"))
	if !errors.Is(err, engine.ErrSecretDirNotTmpfs) {
		t.Fatalf("CreateSecret in %s (not a tmpfs) = %v, want ErrSecretDirNotTmpfs", dir, err)
	}
	for _, want := range []string{dir, "mount -t tmpfs", env.SecretDir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if left, _ := os.ReadDir(parent); len(left) > 0 {
		t.Errorf("the refusal left %v in %s", left, parent)
	}
}

// diskDir returns a new directory that is not on a tmpfs: a test temporary
// directory, or one below the engine's storage where /tmp is a tmpfs.
func diskDir(t *testing.T, storage []string) string {
	for _, parent := range append([]string{""}, storage...) {
		d, err := os.MkdirTemp(parent, "not-tmpfs-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if engine.CheckTmpfs(d) != nil {
			return d
		}
	}
	t.Fatal("no directory off tmpfs to test the refusal with")
	return ""
}

// Encodings returns value as it could be found in a file: in clear, in
// hex, and in base64 (standard and URL alphabets) at each of the three
// alignments it can have inside a longer encoded text.
func Encodings(value []byte) [][]byte {
	out := [][]byte{value, []byte(hex.EncodeToString(value))}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := 0; k < 3; k++ {
			e := enc.EncodeToString(append(make([]byte, k), value...))
			// Drop the groups that also encode the padding before and
			// after: what is left depends on the value alone.
			lo, hi := 0, len(e)-4
			if k > 0 {
				lo = 4
			}
			if hi-lo >= 16 {
				out = append(out, []byte(e[lo:hi]))
			}
		}
	}
	return out
}

// FindInFiles returns the regular files below dirs holding any of needles.
// It stays on each dir's file system: a mount below (a container's shm, an
// overlay) is not the engine's disk.
func FindInFiles(dirs []string, needles ...[]byte) []string {
	var found []string
	for _, root := range dirs {
		var rootDev uint64
		if st, err := os.Stat(root); err == nil {
			rootDev = uint64(st.Sys().(*syscall.Stat_t).Dev)
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			if uint64(info.Sys().(*syscall.Stat_t).Dev) != rootDev {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for _, n := range needles {
				if bytes.Contains(b, n) {
					found = append(found, p)
					break
				}
			}
			return nil
		})
	}
	return found
}
