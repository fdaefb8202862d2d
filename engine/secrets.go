package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrSecretDirNotTmpfs: the directory for secret files is not on a tmpfs,
// so a secret written there would reach a disk. Nothing was written.
var ErrSecretDirNotTmpfs = errors.New("secret dir is not on a tmpfs")

// SecretFiles keeps secrets as root-only files in a directory on a tmpfs,
// bind-mounted read-only into the containers that use them. Both backends
// keep secrets this way:
//
//   - Docker has no secrets outside swarm.
//   - Podman's own secrets reach the disk whatever their driver. The 4.3
//     service honours the file driver's "path" option (secretsdata.json
//     lands on the tmpfs), but creating a container that mounts the
//     secret copies its value in clear into the container's static dir,
//     GRAPHROOT/overlay-containers/ID/userdata/secrets/NAME (libpod
//     runtime_ctr.go, extractSecretToCtrStorage), there until the
//     container is removed: measured with a unique value, found on ext4
//     under the graphroot. A bind mount copies nothing.
//
// The directory must be visible at the same path to the engine and to
// this process: the collector's runner container mounts it from the host.
type SecretFiles struct {
	Dir string
}

// tmpfsMagic is TMPFS_MAGIC from statfs(2).
const tmpfsMagic = 0x01021994

// fsNames name the file systems a secret dir is likely to be found on by
// mistake, for the refusal's message.
var fsNames = map[int64]string{
	0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x794c7630: "overlay", 0x6969: "nfs",
}

// CheckTmpfs returns ErrSecretDirNotTmpfs, saying what to do, unless dir
// is on a tmpfs. A dir not made yet is judged by its nearest existing
// parent, where MkdirAll would create it.
func CheckTmpfs(dir string) error {
	var st syscall.Statfs_t
	p := filepath.Clean(dir)
	for {
		err := syscall.Statfs(p, &st)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) || p == filepath.Dir(p) {
			return fmt.Errorf("secret dir %s: %w", dir, err)
		}
		p = filepath.Dir(p)
	}
	if int64(st.Type) == tmpfsMagic {
		return nil
	}
	fs := fsNames[int64(st.Type)]
	if fs == "" {
		fs = fmt.Sprintf("file system 0x%x", st.Type)
	}
	return fmt.Errorf("%w: %s is on %s, and job secrets must never reach a disk: mount a tmpfs there "+
		"(mount -t tmpfs -o size=64m,mode=0700 tmpfs %s) or point COLLECTOR_SECRET_DIR at a directory on a tmpfs, such as /dev/shm/collector-secrets",
		ErrSecretDirNotTmpfs, dir, fs, dir)
}

// Path is where the file of secret name lives.
func (s SecretFiles) Path(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", fmt.Errorf("secret name %q: want a plain name", name)
	}
	if s.Dir == "" {
		return "", errors.New("no secret dir configured")
	}
	return filepath.Join(s.Dir, name), nil
}

// Create writes data to a new root-only file, after checking the
// directory is on a tmpfs. A taken name gives ErrConflict.
func (s SecretFiles) Create(name string, data []byte) error {
	p, err := s.Path(name)
	if err != nil {
		return err
	}
	// Check before creating anything: a refused dir is not left behind.
	if err := CheckTmpfs(s.Dir); err != nil {
		return fmt.Errorf("create secret %q: %w", name, err)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create secret %q: %w", name, err)
	}
	// O_EXCL|O_NOFOLLOW: never write through a file or link planted there.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o400)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create secret %q: %w: a secret of that name exists", name, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create secret %q: %w", name, err)
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(p)
		return fmt.Errorf("create secret %q: %w", name, werr)
	}
	return nil
}

// Remove deletes the secret's file; ErrNotFound if absent.
func (s SecretFiles) Remove(name string) error {
	p, err := s.Path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove secret %q: %w", name, ErrNotFound)
		}
		return fmt.Errorf("remove secret %q: %w", name, err)
	}
	return nil
}

// Mount gives the secret's file its mode and owner and returns the
// read-only bind mount that places it at the secret's target. A missing
// secret gives ErrNotFound.
//
// The relabel is shared (z: container_file_t, level s0), not private: a
// file relabelled to the job's MCS level could no longer be unlinked by the
// runner, whose level differs. Only the job has the file mounted, so no
// other container can reach it whatever its level (docs/selinux.md).
func (s SecretFiles) Mount(sm SecretMount) (Mount, error) {
	p, err := s.Path(sm.Name)
	if err != nil {
		return Mount{}, err
	}
	mode := os.FileMode(sm.Mode)
	if mode == 0 {
		mode = 0o400
	}
	// Mode first, while root still owns the file: after the chown a
	// runner without CAP_FOWNER could no longer change it.
	if err := os.Chmod(p, mode); err != nil {
		return Mount{}, fmt.Errorf("secret %q: %w", sm.Name, notExist(err))
	}
	if err := os.Chown(p, sm.UID, sm.GID); err != nil {
		return Mount{}, fmt.Errorf("secret %q: %w", sm.Name, notExist(err))
	}
	return Mount{Source: p, Target: sm.Target, ReadOnly: true, Relabel: RelabelShared}, nil
}

func notExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}
