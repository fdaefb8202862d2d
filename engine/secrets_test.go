package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/engine"
)

func TestSecretFilesRefuseADisk(t *testing.T) {
	disk := t.TempDir()
	if engine.CheckTmpfs(disk) == nil {
		t.Skipf("%s is on a tmpfs here: no disk to refuse", disk)
	}
	dir := filepath.Join(disk, "secrets")
	err := engine.SecretFiles{Dir: dir}.Create("s", []byte("value"))
	if !errors.Is(err, engine.ErrSecretDirNotTmpfs) {
		t.Fatalf("Create in %s = %v, want ErrSecretDirNotTmpfs", dir, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refusal created %s (%v)", dir, err)
	}
}

func TestSecretFilesOnTmpfs(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "secretfiles-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	s := engine.SecretFiles{Dir: filepath.Join(shm, "not-yet")}
	if err := s.Create("s", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create("s", []byte("other")); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("Create on a taken name = %v, want ErrConflict", err)
	}
	m, err := s.Mount(engine.SecretMount{Name: "s", Target: "/run/collector/config.json", Mode: 0o400, UID: os.Getuid(), GID: os.Getgid()})
	if err != nil || !m.ReadOnly || m.Target != "/run/collector/config.json" {
		t.Fatalf("Mount = %+v, %v", m, err)
	}
	if st, err := os.Stat(m.Source); err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("secret file %s: %v, %v; want mode 0400", m.Source, st, err)
	}
	if err := s.Remove("s"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("s"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	if _, err := s.Mount(engine.SecretMount{Name: "s", Target: "/x"}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Mount of a removed secret = %v, want ErrNotFound", err)
	}
	if err := s.Create("../escape", nil); err == nil {
		t.Error("a name with a slash: want an error")
	}
}
