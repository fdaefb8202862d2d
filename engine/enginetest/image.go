package enginetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// busyboxApplets are linked into the test image's /bin.
var busyboxApplets = []string{"sh", "cat", "echo", "sleep", "grep", "ls", "id", "touch", "head", "dd", "true", "wc", "env", "seq", "sha256sum"}

// BuildTestImage builds a FROM-scratch image holding Debian's static busybox
// with podman's CLI on p's storage, tags it ref and pushes it to the
// registry at registry (plain HTTP on 127.0.0.1) as registry/collector-test/busybox:1.
// It returns the pushed reference; PushedDigestRef gives it by digest.
func BuildTestImage(p *Podman, registry string) (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox-static is not installed: %w", err)
	}
	ctxDir, err := os.MkdirTemp(p.Dir, "image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(ctxDir)
	rootfs := filepath.Join(ctxDir, "rootfs")
	for _, d := range []string{"bin", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return "", err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		return "", err
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			return "", err
		}
	}
	containerfile := "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sh\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		return "", err
	}
	local := "localhost/collector-test/busybox:1"
	if _, err := p.Run("build", "--quiet", "--timestamp", "0", "-t", local, ctxDir); err != nil {
		return "", err
	}
	ref := registry + "/collector-test/busybox:1"
	if _, err := p.Run("push", "--quiet", "--tls-verify=false", "--digestfile", filepath.Join(p.Dir, "test-image.digest"), local, "docker://"+ref); err != nil {
		return "", err
	}
	return ref, nil
}

// PushedDigestRef returns the test image as the registry names it by
// digest (name@sha256:...). The local image's RepoDigests may also list the
// digest of the manifest as built, which the registry does not have.
func PushedDigestRef(p *Podman, ref string) (string, error) {
	d, err := os.ReadFile(filepath.Join(p.Dir, "test-image.digest"))
	if err != nil {
		return "", fmt.Errorf("test image digest: %w", err)
	}
	name, _, _ := strings.Cut(ref, ":1")
	return name + "@" + strings.TrimSpace(string(d)), nil
}
