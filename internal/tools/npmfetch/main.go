// Command npmfetch installs the packages an npm lockfile pins (lockfile
// version 2 or 3) from their registry tarballs, each checked against its
// lockfile integrity (SHA-512) before it is unpacked: `npm ci` for a
// machine without Node. The tests' JavaScript (axe-core) comes this way
// (`make npm-deps`); nothing it installs ships in a binary.
//
//	go run ./internal/tools/npmfetch -lock packaging/npm/package-lock.json -dir .cache/npm
//
// A package already unpacked at its locked version is kept.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type lockfile struct {
	LockfileVersion int `json:"lockfileVersion"`
	Packages        map[string]struct {
		Version   string `json:"version"`
		Resolved  string `json:"resolved"`
		Integrity string `json:"integrity"`
	} `json:"packages"`
}

// maxTarball bounds a download.
const maxTarball = 64 << 20

func main() {
	lock := flag.String("lock", "packaging/npm/package-lock.json", "the lockfile")
	dir := flag.String("dir", ".cache/npm", "where packages are unpacked (DIR/<name>)")
	flag.Parse()
	if err := run(*lock, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "npmfetch:", err)
		os.Exit(1)
	}
}

func run(lockPath, dir string) error {
	b, err := os.ReadFile(lockPath)
	if err != nil {
		return err
	}
	var lf lockfile
	if err := json.Unmarshal(b, &lf); err != nil {
		return fmt.Errorf("%s: %w", lockPath, err)
	}
	if lf.LockfileVersion < 2 {
		return fmt.Errorf("%s: lockfile version %d: want 2 or 3", lockPath, lf.LockfileVersion)
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	for path, p := range lf.Packages {
		name, ok := strings.CutPrefix(path, "node_modules/")
		if !ok || strings.Contains(name, "node_modules/") {
			continue // the root, or a nested copy
		}
		if err := fetch(client, filepath.Join(dir, filepath.FromSlash(name)), name, p.Version, p.Resolved, p.Integrity); err != nil {
			return fmt.Errorf("%s@%s: %w", name, p.Version, err)
		}
	}
	return nil
}

func fetch(client *http.Client, dest, name, version, resolved, integrity string) error {
	stamp := filepath.Join(dest, ".npmfetch-version")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == version+" "+integrity {
		return nil
	}
	u, err := url.Parse(resolved)
	if err != nil || u.Scheme != "https" {
		return fmt.Errorf("resolved %q: want an https URL", resolved)
	}
	algo, sum, ok := strings.Cut(integrity, "-")
	want, err := base64.StdEncoding.DecodeString(sum)
	if !ok || algo != "sha512" || err != nil || len(want) != sha512.Size {
		return fmt.Errorf("integrity %q: want sha512-<base64>", integrity)
	}
	resp, err := client.Get(resolved)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", resolved, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTarball+1))
	if err != nil {
		return err
	}
	if len(body) > maxTarball {
		return fmt.Errorf("GET %s: over %d bytes", resolved, maxTarball)
	}
	got := sha512.Sum512(body)
	if !bytes.Equal(got[:], want) {
		return fmt.Errorf("GET %s: integrity mismatch: the lockfile pins sha512-%s, the registry sent sha512-%s",
			resolved, sum, base64.StdEncoding.EncodeToString(got[:]))
	}
	tmp := dest + ".tmp"
	os.RemoveAll(tmp)
	if err := untar(body, tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".npmfetch-version"), []byte(version+" "+integrity), 0o644); err != nil {
		return err
	}
	os.RemoveAll(dest)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return err
	}
	fmt.Printf("npmfetch: %s@%s verified and unpacked in %s\n", name, version, dest)
	return nil
}

// untar unpacks an npm tarball (its files under package/) into dir; no
// entry may leave dir, and only files and directories are made.
func untar(tgz []byte, dir string) error {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, ok := strings.CutPrefix(filepath.ToSlash(filepath.Clean(h.Name)), "package/")
		if !ok || rel == "" || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			continue
		}
		target := filepath.Join(dir, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, maxTarball))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
