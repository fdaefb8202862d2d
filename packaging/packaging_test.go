// Package packaging_test checks what packaging/ builds with the real tools:
// the RPMs (rpmbuild, rpmlint, an install into a temporary root with rpm),
// the platform's systemd unit (systemd-analyze), and the SELinux module
// (compiled with Debian's selinux-policy-dev, read back as CIL, its file
// contexts looked up with libselinux). Nothing here touches /etc or the
// host's systemd: every root is a temporary directory.
//
// A missing tool skips a test, and fails it under CI=true; the Debian
// package to install is in the message. Under -short the tests that build
// the RPMs skip.
package packaging_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/collectorhq/collector/internal/env"
)

// tools maps each program the tests run to the Debian package it comes in.
var tools = map[string]string{
	"rpmbuild":           "rpm",
	"rpm":                "rpm",
	"rpm2archive":        "rpm",
	"rpmlint":            "rpmlint",
	"bzip2":              "bzip2",
	"make":               "make",
	"checkmodule":        "selinux-policy-dev",
	"semodule_unpackage": "selinux-policy-dev",
	"selabel_lookup":     "selinux-policy-dev",
	"systemd-analyze":    "systemd",
	"systemd-sysusers":   "systemd",
	"systemd-tmpfiles":   "systemd",
	"man":                "man-db",
	"zsh":                "zsh",
	"bash":               "bash",
	"tar":                "tar",
	"go":                 "Go (from go.dev/dl, as the CI image has it)",
}

// Files that are not programs on PATH.
const (
	develMakefile = "/usr/share/selinux/devel/Makefile" // selinux-policy-dev
	ppToCIL       = "/usr/libexec/selinux/hll/pp"       // policycoreutils (with selinux-policy-dev)
)

// need returns the path of each tool, or skips (fails in CI) naming the
// Debian package that brings it.
func need(t *testing.T, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, name := range names {
		var path string
		var err error
		if strings.HasPrefix(name, "/") {
			path = name
			_, err = os.Stat(name)
		} else {
			path, err = exec.LookPath(name)
		}
		if err != nil {
			pkg := tools[name]
			switch name {
			case develMakefile:
				pkg = "selinux-policy-dev"
			case ppToCIL:
				pkg = "policycoreutils (selinux-policy-dev)"
			}
			if env.InCI() {
				t.Fatalf("%s not found: install the Debian package %s", name, pkg)
			}
			t.Skipf("%s not found (Debian package %s)", name, pkg)
		}
		paths[name] = path
	}
	return paths
}

// needRoot skips (fails in CI) unless the test runs as root: installing
// into a root directory chroots and sets owners.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if env.InCI() {
		t.Fatal("rpm -i --root needs root (chroot, chown)")
	}
	t.Skip("rpm -i --root needs root (chroot, chown)")
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a command and returns its standard output; a failure or, when
// quiet is set, anything on standard error fails the test.
func run(t *testing.T, dir string, environ []string, quiet bool, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if environ != nil {
		cmd.Env = append(os.Environ(), environ...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil || (quiet && stderr.Len() > 0) {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// The RPMs, built once for all the tests that need them.
var built struct {
	once  sync.Once
	dir   string
	files map[string]string // package name -> path
	err   error
}

// rpms builds the RPMs with packaging/rpm/build.sh (as `make rpm` does)
// and returns them by package name.
func rpms(t *testing.T) map[string]string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binaries and the RPMs (-short)")
	}
	paths := need(t, "go", "rpmbuild", "rpm", "bzip2", "make", "checkmodule", develMakefile)
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "collector-rpms-")
		if built.err != nil {
			return
		}
		cmd := exec.Command("packaging/rpm/build.sh", built.dir)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "GO="+paths["go"], "RPMBUILD="+paths["rpmbuild"])
		out, err := cmd.CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("build.sh: %v\n%s", err, out)
			return
		}
		built.files = map[string]string{}
		entries, err := os.ReadDir(built.dir)
		if err != nil {
			built.err = err
			return
		}
		for _, e := range entries {
			path := filepath.Join(built.dir, e.Name())
			name, err := exec.Command(paths["rpm"], "-qp", "--qf", "%{NAME}", path).Output()
			if err != nil {
				built.err = fmt.Errorf("rpm -qp %s: %v", path, err)
				return
			}
			built.files[string(name)] = path
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.files
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// The three packages and their architectures.
var packages = map[string]string{
	"collector":          runtimeRPMArch(),
	"collector-platform": runtimeRPMArch(),
	"collector-selinux":  "noarch",
}

func runtimeRPMArch() string {
	if runtime.GOARCH == "arm64" {
		return "aarch64"
	}
	return "x86_64"
}

func TestRPMsBuilt(t *testing.T) {
	files := rpms(t)
	rpm := need(t, "rpm")["rpm"]
	if len(files) != len(packages) {
		t.Errorf("built %v, want %d packages", files, len(packages))
	}
	for name, arch := range packages {
		path, ok := files[name]
		if !ok {
			t.Errorf("no %s package", name)
			continue
		}
		got := run(t, "", nil, false, rpm, "-qp", "--qf", "%{ARCH}", path)
		if got != arch {
			t.Errorf("%s: arch %s, want %s", name, got, arch)
		}
	}
	// The module package requires the container policy it builds on.
	reqs := run(t, "", nil, false, rpm, "-qp", "--requires", files["collector-selinux"])
	if !regexp.MustCompile(`(?m)^container-selinux$`).MatchString(reqs) {
		t.Errorf("collector-selinux does not require container-selinux:\n%s", reqs)
	}
}

// TestRPMLint: rpmlint, with the configuration in packaging/rpm (RHEL's
// conventions and this package's deliberate exceptions, each explained
// there), reports no error on any package.
func TestRPMLint(t *testing.T) {
	files := rpms(t)
	lint := need(t, "rpmlint")["rpmlint"]
	args := []string{"-c", filepath.Join(repoRoot(t), "packaging/rpm/rpmlint.toml")}
	for _, path := range files {
		args = append(args, path)
	}
	cmd := exec.Command(lint, args...)
	out, err := cmd.CombinedOutput()
	t.Logf("rpmlint:\n%s", out)
	if err != nil {
		t.Fatalf("rpmlint: %v", err)
	}
	if !regexp.MustCompile(`\b0 errors\b`).Match(out) {
		t.Fatal("rpmlint reports errors")
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ": E: ") {
			t.Errorf("rpmlint: %s", line)
		}
	}
}

// entry is what a package installs at a path.
type entry struct {
	pkg   string      // the package, or the packages separated by spaces
	mode  fs.FileMode // type and permission bits
	owner string
	group string
}

// expected lists every file the RPMs install, but the build-id links.
func expected(t *testing.T) map[string]entry {
	const (
		col  = "collector"
		plat = "collector-platform"
		sel  = "collector-selinux"
		dir  = fs.ModeDir
		user = "collector-platform"
	)
	files := map[string]entry{
		"/usr/bin/collector":                                   {col, 0o755, "root", "root"},
		"/usr/share/man/man1/collector.1.gz":                   {col, 0o644, "root", "root"},
		"/usr/share/bash-completion/completions/collector":     {col, 0o644, "root", "root"},
		"/usr/share/zsh":                                       {col + " " + plat, dir | 0o755, "root", "root"},
		"/usr/share/zsh/site-functions":                        {col + " " + plat, dir | 0o755, "root", "root"},
		"/usr/share/zsh/site-functions/_collector":             {col, 0o644, "root", "root"},
		"/etc/collector":                                       {col, dir | 0o700, "root", "root"},
		"/var/lib/collector":                                   {col, dir | 0o700, "root", "root"},
		"/usr/lib/tmpfiles.d/collector.conf":                   {col, 0o644, "root", "root"},
		"/usr/lib/systemd/system/collector-key-rotate.service": {col, 0o644, "root", "root"},
		"/usr/lib/systemd/system/collector-key-rotate.timer":   {col, 0o644, "root", "root"},

		"/usr/bin/platform":                                  {plat, 0o755, "root", "root"},
		"/usr/share/man/man1/platform.1.gz":                  {plat, 0o644, "root", "root"},
		"/usr/share/bash-completion/completions/platform":    {plat, 0o644, "root", "root"},
		"/usr/share/zsh/site-functions/_platform":            {plat, 0o644, "root", "root"},
		"/usr/lib/systemd/system/collector-platform.service": {plat, 0o644, "root", "root"},
		"/usr/lib/sysusers.d/collector-platform.conf":        {plat, 0o644, "root", "root"},
		"/etc/collector-platform":                            {plat, dir | 0o750, "root", user},
		"/etc/collector-platform/platform.env":               {plat, 0o640, "root", user},
		"/var/lib/collector-platform":                        {plat, dir | 0o700, user, user},

		"/usr/share/selinux/packages/targeted/collector.pp.bz2":     {sel, 0o644, "root", "root"},
		"/usr/share/selinux/devel/include/distributed/collector.if": {sel, 0o644, "root", "root"},
	}
	// The Quadlet units, when packaging/quadlet has them at build time.
	var units []string
	for _, ext := range []string{"container", "volume", "network", "pod", "kube", "image"} {
		m, _ := filepath.Glob(filepath.Join(repoRoot(t), "packaging/quadlet/*."+ext))
		units = append(units, m...)
	}
	if len(units) > 0 {
		files["/usr/share/collector"] = entry{col, dir | 0o755, "root", "root"}
		files["/usr/share/collector/quadlet"] = entry{col, dir | 0o755, "root", "root"}
	}
	for _, u := range units {
		files["/usr/share/collector/quadlet/"+filepath.Base(u)] = entry{col, 0o644, "root", "root"}
	}
	return files
}

// packaged lists a package's files as its header says, but the build-id
// links: path -> "MODE OWNER GROUP FLAGS".
func packaged(t *testing.T, rpm, path string) map[string][]string {
	t.Helper()
	out := run(t, "", nil, false, rpm, "-qp", "--qf",
		`[%{FILENAMES}\t%{FILEMODES:octal}\t%{FILEUSERNAME}\t%{FILEGROUPNAME}\t%{FILEFLAGS:fflags}\n]`, path)
	files := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("rpm -qp: %q", line)
		}
		if strings.HasPrefix(f[0], "/usr/lib/.build-id") {
			continue
		}
		files[f[0]] = f[1:]
	}
	return files
}

// TestRPMHeaders: each package holds exactly its files, with their modes
// and owners, and platform.env is %config(noreplace).
func TestRPMHeaders(t *testing.T) {
	files := rpms(t)
	rpm := need(t, "rpm")["rpm"]
	want := expected(t)
	seen := map[string]bool{}
	for name, path := range files {
		for file, meta := range packaged(t, rpm, path) {
			seen[file] = true
			w, ok := want[file]
			if !ok || !contains(strings.Fields(w.pkg), name) {
				t.Errorf("%s: unexpected file %s", name, file)
				continue
			}
			var mode uint32
			fmt.Sscanf(meta[0], "%o", &mode)
			if got := fileMode(mode); got != w.mode {
				t.Errorf("%s: mode %v, want %v", file, got, w.mode)
			}
			if meta[1] != w.owner || meta[2] != w.group {
				t.Errorf("%s: owner %s:%s, want %s:%s", file, meta[1], meta[2], w.owner, w.group)
			}
			config := strings.Contains(meta[3], "c") && strings.Contains(meta[3], "n")
			if wantConfig := file == "/etc/collector-platform/platform.env"; config != wantConfig {
				t.Errorf("%s: flags %q, %%config(noreplace) %v", file, meta[3], wantConfig)
			}
		}
	}
	for file, w := range want {
		if !seen[file] {
			t.Errorf("%s: missing %s", w.pkg, file)
		}
	}
}

// fileMode turns an st_mode into an fs.FileMode (type and permissions).
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	}
	return mode
}

// install installs the three RPMs into a fresh root directory, as a host
// does: the sysusers.d file of the package first (what rpm >= 4.19 and
// systemd-sysusers do; older rpm runs the %pre, whose equivalence to it
// TestRPMScriptlets checks), then the files. Scriptlets do not run (the
// root has no shell); TestRPMScriptlets runs them on their own.
func install(t *testing.T) string {
	t.Helper()
	files := rpms(t)
	needRoot(t)
	p := need(t, "rpm", "rpm2archive", "systemd-sysusers", "tar")
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	sysusers := extract(t, p, files["collector-platform"], "./usr/lib/sysusers.d/collector-platform.conf")
	run(t, "", nil, false, p["systemd-sysusers"], "--root="+root, sysusers)
	args := []string{"-i", "--root", root, "--nodeps", "--noscripts"}
	for _, path := range files {
		args = append(args, path)
	}
	run(t, "", nil, false, p["rpm"], args...)
	return root
}

// extract returns the path of a copy of one file of a package.
func extract(t *testing.T, p map[string]string, pkg, file string) string {
	t.Helper()
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "p.rpm")
	data, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, nil, false, p["rpm2archive"], "-n", copyPath)
	run(t, dir, nil, false, p["tar"], "-xf", copyPath+".tar", file)
	return filepath.Join(dir, file)
}

// ids reads NAME -> ID from a root's /etc/passwd or /etc/group; root is 0.
func ids(t *testing.T, path string) map[string]uint32 {
	t.Helper()
	m := map[string]uint32{"root": 0}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 {
			var id uint32
			fmt.Sscanf(f[2], "%d", &id)
			m[f[0]] = id
		}
	}
	return m
}

// TestRPMInstall: installed into a root, every file has its mode and its
// owner (the platform's user from its sysusers.d file), the binaries run,
// and the tmpfiles.d entry makes the job secrets directory 0700.
func TestRPMInstall(t *testing.T) {
	root := install(t)
	p := need(t, "systemd-tmpfiles")
	users := ids(t, filepath.Join(root, "etc/passwd"))
	groups := ids(t, filepath.Join(root, "etc/group"))
	if _, ok := users["collector-platform"]; !ok {
		t.Fatal("no collector-platform user in the root's /etc/passwd")
	}
	for path, w := range expected(t) {
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fileMode(st.Mode); got != w.mode {
			t.Errorf("%s: mode %v, want %v", path, got, w.mode)
		}
		if st.Uid != users[w.owner] || st.Gid != groups[w.group] {
			t.Errorf("%s: owner %d:%d, want %s:%s (%d:%d)", path, st.Uid, st.Gid, w.owner, w.group, users[w.owner], groups[w.group])
		}
	}
	for _, bin := range []string{"collector", "platform"} {
		out := run(t, "", nil, false, filepath.Join(root, "usr/bin", bin), "--version")
		if !strings.HasPrefix(out, bin+" version ") {
			t.Errorf("%s --version: %q", bin, out)
		}
	}

	run(t, "", nil, true, p["systemd-tmpfiles"], "--create", "--root="+root, "collector.conf")
	for path, mode := range map[string]fs.FileMode{"/run/collector": fs.ModeDir | 0o755, "/run/collector/secrets": fs.ModeDir | 0o700} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Fatalf("after systemd-tmpfiles: %v", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fileMode(st.Mode); got != mode || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: %v %d:%d, want %v root:root", path, got, st.Uid, st.Gid, mode)
		}
	}
}

// TestInstalledDocs: the manual pages render without a warning, and the
// completions complete the real command lines.
func TestInstalledDocs(t *testing.T) {
	root := install(t)
	p := need(t, "man", "bash", "zsh")
	for bin, want := range map[string]string{"collector": "collector engine info", "platform": "platform collectors create"} {
		cmd := exec.Command(p["man"], "--warnings", "-l", filepath.Join(root, "usr/share/man/man1", bin+".1.gz"))
		cmd.Env = append(os.Environ(), "MANWIDTH=100", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("man %s: %v\n%s", bin, err, stderr.String())
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("man %s: no %q", bin, want)
		}
		zshFile := filepath.Join(root, "usr/share/zsh/site-functions", "_"+bin)
		run(t, "", nil, true, p["zsh"], "-n", zshFile)
	}
	cases := []struct {
		words []string
		want  string
	}{
		{[]string{"collector", "eng"}, "engine"},
		{[]string{"collector", "engine", ""}, "h help info"},
		{[]string{"collector", "install", "--engine-h"}, "--engine-host"},
		{[]string{"platform", "collectors", "cr"}, "create"},
		{[]string{"platform", "serve", "--data-d"}, "--data-dir"},
	}
	for _, c := range cases {
		script := filepath.Join(root, "usr/share/bash-completion/completions", c.words[0])
		prog := fmt.Sprintf("source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_%s\nprintf '%%s\\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '\n",
			script, shellWords(c.words), len(c.words)-1, c.words[0])
		got := strings.TrimSpace(run(t, "", nil, true, p["bash"], "--norc", "--noprofile", "-c", prog))
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.words, got, c.want)
		}
	}
}

func shellWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}

// unitFile parses a systemd unit: "Section.Key" -> values in order.
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, _ := strings.Cut(line, "=")
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys
}

// TestPlatformUnit: systemd-analyze verify passes on the installed unit
// with no warning, its sandbox scores "OK" or better in
// systemd-analyze security, and the settings the design asks for are
// there.
//
// Both run offline against the temporary root (--root): they load the unit
// the way systemd would, resolve its dependencies (the host's own unit
// files are copied into the root for that, read-only), check that
// ExecStart's binary is there and executable, that Documentation=
// man:platform(1) opens (MANPATH points into the root), and parse every
// setting. Not checked, because it needs a running systemd as PID 1: that
// the service starts and serves under this sandbox (the syscall filter,
// the read-only system, the private /tmp and /dev at run time).
func TestPlatformUnit(t *testing.T) {
	root := install(t)
	p := need(t, "systemd-analyze", "man") // man: verify opens Documentation=man:platform(1)
	unitDir := filepath.Join(root, "usr/lib/systemd/system")
	hostUnits := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(hostUnits, "sysinit.target")); err != nil {
		hostUnits = "/lib/systemd/system"
	}
	run(t, "", nil, false, "cp", "-an", hostUnits+"/.", unitDir+"/")
	manpath := []string{"MANPATH=" + filepath.Join(root, "usr/share/man")}

	run(t, root, manpath, true, p["systemd-analyze"], "verify", "--root="+root, "collector-platform.service")
	// The collector's key rotation timer and its service.
	run(t, root, manpath, true, p["systemd-analyze"], "verify", "--root="+root, "collector-key-rotate.timer", "collector-key-rotate.service")

	out := run(t, root, nil, false, p["systemd-analyze"], "security", "--offline=yes", "--root="+root,
		"--threshold=20", "--no-pager", "collector-platform.service")
	if m := regexp.MustCompile(`Overall exposure level for collector-platform.service: ([0-9.]+) (\S+)`).FindStringSubmatch(out); m != nil {
		t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	} else {
		t.Errorf("systemd-analyze security: no overall exposure in\n%s", out)
	}

	unit := unitFile(t, filepath.Join(unitDir, "collector-platform.service"))
	sysusers, err := os.ReadFile(filepath.Join(root, "usr/lib/sysusers.d/collector-platform.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^u collector-platform - "[^"]+" /var/lib/collector-platform /sbin/nologin$`).Match(sysusers) {
		t.Errorf("sysusers.d: %s", sysusers)
	}
	for key, want := range map[string]string{
		"Service.User":                  "collector-platform",
		"Service.Group":                 "collector-platform",
		"Service.ExecStart":             "/usr/bin/platform serve",
		"Service.EnvironmentFile":       "/etc/collector-platform/platform.env",
		"Service.NoNewPrivileges":       "yes",
		"Service.ProtectSystem":         "strict",
		"Service.PrivateTmp":            "yes",
		"Service.CapabilityBoundingSet": "",
		"Service.AmbientCapabilities":   "",
		"Service.ReadWritePaths":        "/var/lib/collector-platform",
		"Service.StateDirectory":        "collector-platform",
		"Service.StateDirectoryMode":    "0700",
		"Service.UMask":                 "0077",
	} {
		if got := unit[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// TestPlatformEnv: the settings file names exactly the variables
// `platform serve` reads (and the log settings of every command): none
// that it ignores, and none of its settings missing.
func TestPlatformEnv(t *testing.T) {
	root := install(t)
	platform := filepath.Join(root, "usr/bin/platform")
	envVar := regexp.MustCompile(`\$([A-Z][A-Z0-9_]*)`)
	names := func(text string) map[string]bool {
		m := map[string]bool{}
		for _, s := range envVar.FindAllStringSubmatch(text, -1) {
			m[s[1]] = true
		}
		return m
	}
	serve := names(run(t, "", nil, false, platform, "serve", "--help"))
	global := names(run(t, "", nil, false, platform, "--help"))
	if len(serve) < 10 || len(global) == 0 {
		t.Fatalf("read %d serve and %d global variables from --help", len(serve), len(global))
	}
	data, err := os.ReadFile(filepath.Join(root, "etc/collector-platform/platform.env"))
	if err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#?([A-Z][A-Z0-9_]*)=`).FindAllStringSubmatch(string(data), -1) {
		inFile[m[1]] = true
		if !serve[m[1]] && !global[m[1]] {
			t.Errorf("platform.env sets %s, which platform serve does not read", m[1])
		}
	}
	for name := range serve {
		if !inFile[name] {
			t.Errorf("platform.env lacks %s (a setting of platform serve): add it to packaging/systemd/platform.env", name)
		}
	}
}

// scriptlet runs a package scriptlet under sh with $1 = arg, the commands
// it calls by absolute path (/usr/sbin/..., /usr/bin/...) and by name
// replaced by stand-ins that record their arguments; selinuxenabled answers
// as selinux says, getent finds nothing. It returns the calls, a line each.
// The stand-ins are the point: the test checks the scriptlet's own logic
// (install, upgrade, removal; SELinux on or off), not semodule, which
// needs an SELinux host.
func scriptlet(t *testing.T, text string, arg int, selinux bool) []string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	enabled := "1"
	if selinux {
		enabled = "0"
	}
	for _, name := range []string{"semodule", "load_policy", "restorecon", "selinuxenabled", "systemctl", "systemd-tmpfiles", "getent", "groupadd", "useradd"} {
		body := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >>%s\n", name, log)
		switch name {
		case "selinuxenabled":
			body += "exit " + enabled + "\n"
		case "getent":
			body += "exit 2\n"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := strings.NewReplacer("/usr/sbin/", dir+"/", "/usr/bin/", dir+"/").Replace(text)
	cmd := exec.Command("/bin/sh", "-c", script, "scriptlet", fmt.Sprint(arg))
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scriptlet($1=%d): %v\n%s\n%s", arg, err, out, text)
	}
	data, _ := os.ReadFile(log)
	if len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestRPMScriptlets: what each scriptlet does on install ($1=1), upgrade
// ($1=2 in %post, 1 in %postun) and removal ($1=0).
func TestRPMScriptlets(t *testing.T) {
	files := rpms(t)
	rpm := need(t, "rpm")["rpm"]
	tag := func(pkg, tag string) string {
		return run(t, "", nil, false, rpm, "-qp", "--qf", "%{"+tag+"}", files[pkg])
	}
	const (
		install = "semodule -n -s targeted -X 200 -i /usr/share/selinux/packages/targeted/collector.pp.bz2"
		remove  = "semodule -n -s targeted -X 200 -r collector"
		load    = "load_policy "
		relabel = "restorecon -R /etc/collector /var/lib/collector /run/collector /run/podman"
	)
	post, postun := tag("collector-selinux", "POSTIN"), tag("collector-selinux", "POSTUN")
	cases := []struct {
		name    string
		script  string
		arg     int
		selinux bool
		want    []string
	}{
		{"install, enforcing", post, 1, true, []string{install, "selinuxenabled ", load, relabel}},
		{"install, SELinux off", post, 1, false, []string{install, "selinuxenabled "}},
		{"upgrade", post, 2, true, []string{install, "selinuxenabled ", load, relabel}},
		{"upgrade, old package", postun, 1, true, nil},
		{"removal, enforcing", postun, 0, true, []string{remove, "selinuxenabled ", load, relabel}},
		{"removal, SELinux off", postun, 0, false, []string{remove, "selinuxenabled "}},
	}
	for _, c := range cases {
		got := scriptlet(t, c.script, c.arg, c.selinux)
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("collector-selinux %s: calls\n%s\nwant\n%s", c.name, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}

	// The collector's %post makes the secrets tmpfs at once.
	if got := scriptlet(t, tag("collector", "POSTIN"), 1, false); strings.Join(got, "\n") != "systemd-tmpfiles --create /usr/lib/tmpfiles.d/collector.conf" {
		t.Errorf("collector %%post: %q", got)
	}

	// The platform's %pre makes the user its sysusers.d file declares.
	pre := scriptlet(t, tag("collector-platform", "PREIN"), 1, false)
	want := []string{
		"getent group collector-platform",
		"groupadd -r collector-platform",
		"getent passwd collector-platform",
		"useradd -r -g collector-platform -d /var/lib/collector-platform -s /sbin/nologin -c Collector platform collector-platform",
	}
	if strings.Join(pre, "\n") != strings.Join(want, "\n") {
		t.Errorf("collector-platform %%pre: calls\n%s\nwant\n%s", strings.Join(pre, "\n"), strings.Join(want, "\n"))
	}
	sysusers, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging/systemd/collector-platform.sysusers"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sysusers), `u collector-platform - "Collector platform" /var/lib/collector-platform /sbin/nologin`) {
		t.Errorf("%%pre and sysusers.d disagree:\n%s", sysusers)
	}

	// The platform's service: preset on install, stopped and disabled on
	// removal, restarted after an upgrade.
	for _, c := range []struct {
		tag  string
		arg  int
		want []string
	}{
		{"POSTIN", 1, []string{"systemctl --no-reload preset collector-platform.service"}},
		{"POSTIN", 2, nil},
		{"PREUN", 0, []string{"systemctl --no-reload disable --now collector-platform.service"}},
		{"PREUN", 1, nil},
		{"POSTUN", 0, []string{"systemctl daemon-reload"}},
		{"POSTUN", 1, []string{"systemctl daemon-reload", "systemctl try-restart collector-platform.service"}},
	} {
		got := scriptlet(t, tag("collector-platform", c.tag), c.arg, false)
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("collector-platform %s($1=%d): %q, want %q", c.tag, c.arg, got, c.want)
		}
	}
}

// TestRPMVersion: how build.sh turns git describe into Version and Release.
func TestRPMVersion(t *testing.T) {
	bash := need(t, "bash")["bash"]
	script := filepath.Join(repoRoot(t), "packaging/rpm/build.sh")
	for in, want := range map[string]string{
		"v1.2.3":            "1.2.3 1",
		"v1.2.3-4-gabcdef0": "1.2.3 1.4.gabcdef0",
		"1.4":               "1.4 1",
		"807061e-dirty":     "0 0.807061e.dirty",
		"dev":               "0 0.dev",
	} {
		prog := fmt.Sprintf("source <(sed -n '/^rpm_version()/,/^}/p' %s)\nread -r v r <<<\"$(rpm_version %s)\"\necho \"$v ${r//[^A-Za-z0-9._+]/.}\"", script, in)
		if got := strings.TrimSpace(run(t, "", nil, true, bash, "-c", prog)); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// module compiles packaging/selinux with selinux-policy-dev's Makefile, as
// the spec's %build does, and returns the directory and the module as CIL.
func module(t *testing.T) (string, string) {
	t.Helper()
	p := need(t, "make", "checkmodule", develMakefile, ppToCIL)
	dir := t.TempDir()
	for _, ext := range []string{"te", "fc", "if"} {
		data, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging/selinux/collector."+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "collector."+ext), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, nil, false, p["make"], "-f", develMakefile, "collector.pp")
	run(t, dir, nil, false, p[ppToCIL], "collector.pp", "collector.cil")
	cil, err := os.ReadFile(filepath.Join(dir, "collector.cil"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, string(cil)
}

// required are the names the compiled module asks the host policy for.
// Each is in RHEL 8's and 9's targeted policy with container-selinux:
// system_r and the attributes domain, process_user_target (domain.if),
// mlsrangetrans (mls.if), mcs_constrained_type (mcs.if), file_type,
// security_file_type, auth_file_type, non_security_file_type,
// non_auth_file_type (files.if), proc_type and proc_t (kernel.te) come
// with selinux-policy, svirt_sandbox_domain and sandbox_net_domain with
// its virt module (container_t's sandbox attributes, which container.te
// itself uses); container_domain, container_net_domain,
// container_runtime_t, container_var_run_t and container_file_t with
// container-selinux (container.te; container_file_t by virt.te on older
// releases). Debian's refpolicy names several of them differently, which
// is why the module calls no interface: check a new name on RHEL before
// adding it here.
var required = []string{
	"auth_file_type", "container_domain", "container_file_t", "container_net_domain",
	"container_runtime_t", "container_var_run_t", "domain", "file_type",
	"mcs_constrained_type", "mlsrangetrans", "non_auth_file_type", "non_security_file_type",
	"proc_t", "proc_type", "process_user_target", "sandbox_net_domain", "security_file_type",
	"svirt_sandbox_domain", "system_r",
}

var (
	cilRequire = regexp.MustCompile(`(?m)^\((?:type|role)attributeset cil_gen_require (\S+)\)$`)
	cilAttrs   = regexp.MustCompile(`(?m)^\(typeattributeset (\S+) \(([^)]*)\)\)$`)
	cilAllow   = regexp.MustCompile(`(?m)^\(allow (\S+) (\S+) \((\S+) \(([^)]*)\)\)\)$`)
)

// TestSELinuxModule: the module compiles; it requires only names RHEL's
// policy has; its one domain is a container domain (so the engine can run
// a container in it, with container_t's rules and MCS separation) that may
// connect to the engine; it grants nothing to any other domain, so job
// containers stay as confined as container_t is; and its config type is
// read-only to it and outside what "all non-security files" rules reach.
func TestSELinuxModule(t *testing.T) {
	_, cil := module(t)

	var got []string
	for _, m := range cilRequire.FindAllStringSubmatch(cil, -1) {
		got = append(got, m[1])
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(required, " ") {
		t.Errorf("the module requires\n  %v\nwant\n  %v", got, required)
	}

	attrs := map[string]map[string]bool{} // type -> its attributes
	for _, m := range cilAttrs.FindAllStringSubmatch(cil, -1) {
		if m[1] == "cil_gen_require" {
			continue
		}
		for _, typ := range strings.Fields(m[2]) {
			if attrs[typ] == nil {
				attrs[typ] = map[string]bool{}
			}
			attrs[typ][m[1]] = true
		}
	}
	const domainType = "collector_container_t"
	for _, a := range []string{"domain", "container_domain", "container_net_domain", "svirt_sandbox_domain", "mcs_constrained_type"} {
		if !attrs[domainType][a] {
			t.Errorf("%s lacks the attribute %s", domainType, a)
		}
	}
	for _, a := range []string{"non_security_file_type", "non_auth_file_type"} {
		if attrs["collector_conf_t"][a] {
			t.Errorf("collector_conf_t has %s: domains allowed every non-security file could read the keys", a)
		}
	}
	if !attrs["collector_conf_t"]["auth_file_type"] || !attrs["collector_conf_t"]["file_type"] {
		t.Errorf("collector_conf_t's attributes: %v", attrs["collector_conf_t"])
	}

	allows := cilAllow.FindAllStringSubmatch(cil, -1)
	if len(allows) == 0 {
		t.Fatalf("no allow rule in\n%s", cil)
	}
	connect := false
	for _, a := range allows {
		src, tgt, class, perms := a[1], a[2], a[3], strings.Fields(a[4])
		if src != domainType {
			t.Errorf("a rule for %s, not %s: %s", src, domainType, a[0])
		}
		if tgt == "container_runtime_t" && class == "unix_stream_socket" && contains(perms, "connectto") {
			connect = true
		}
		if tgt == "collector_conf_t" {
			for _, w := range []string{"write", "append", "create", "unlink", "rename", "setattr", "add_name", "remove_name", "link"} {
				if contains(perms, w) {
					t.Errorf("%s may %s collector_conf_t: %s", src, w, a[0])
				}
			}
		}
	}
	if !connect {
		t.Error("no unix_stream_socket connectto on container_runtime_t")
	}

	// The installer's code names the same type (selinux.CollectorType),
	// where it is declared.
	if name, ok := collectorTypeConst(t); ok && name != domainType {
		t.Errorf("selinux.CollectorType = %q, the module's type is %q", name, domainType)
	}
}

// collectorTypeConst reads the value of the constant CollectorType from the
// selinux package's sources, if it is declared there.
func collectorTypeConst(t *testing.T) (string, bool) {
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "selinux", "*.go"))
	re := regexp.MustCompile(`(?m)^\s*(?:const\s+)?CollectorType\s*=\s*"([^"]+)"`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := re.FindSubmatch(data); m != nil {
			return string(m[1]), true
		}
	}
	return "", false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestSELinuxInterfaces: the interfaces of collector.if expand and compile
// in a module that calls them (as another policy would).
func TestSELinuxInterfaces(t *testing.T) {
	dir, _ := module(t)
	te := "policy_module(collectorcaller, 1.0.0)\ntype caller_t;\ncollector_read_config(caller_t)\ncollector_manage_state(caller_t)\ncollector_admin(caller_t)\n"
	if err := os.WriteFile(filepath.Join(dir, "collectorcaller.te"), []byte(te), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, nil, false, "make", "-f", develMakefile, "collectorcaller.pp")
}

// TestSELinuxFileContexts: the module's file contexts, looked up by
// libselinux as on RHEL (whose file_contexts.subs_dist makes /run the
// /var/run the policies name).
func TestSELinuxFileContexts(t *testing.T) {
	dir, _ := module(t)
	p := need(t, "semodule_unpackage", "selabel_lookup")
	fc := filepath.Join(dir, "file_contexts")
	run(t, dir, nil, false, p["semodule_unpackage"], "collector.pp", "collector.mod", fc)
	if err := os.WriteFile(fc+".subs_dist", []byte("/run /var/run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		conf   = "system_u:object_r:collector_conf_t:s0"
		state  = "system_u:object_r:collector_var_lib_t:s0"
		engine = "system_u:object_r:container_var_run_t:s0"
		shared = "system_u:object_r:container_file_t:s0"
		none   = ""
		dir_   = syscall.S_IFDIR
		file   = syscall.S_IFREG
		sock   = syscall.S_IFSOCK
	)
	cases := []struct {
		path string
		mode uint32
		want string
	}{
		{"/etc/collector", dir_, conf},
		{"/etc/collector/identity.key", file, conf},
		{"/etc/collector/hpke.key", file, conf},
		{"/etc/collector/config.json", file, conf},
		{"/etc/collector-platform/platform.env", file, none},
		{"/var/lib/collector", dir_, state},
		{"/var/lib/collector/finished-jobs", file, state},
		{"/var/lib/collector-platform/platform.db", file, none},
		{"/run/collector/secrets", dir_, shared},
		{"/run/collector/secrets/collector-job-1", file, shared},
		{"/run/podman", dir_, engine},
		{"/run/podman/podman.sock", sock, engine},
		{"/var/run/podman/podman.sock", sock, engine},
		{"/run/podman/podman.sock", file, none},
		{"/run/podman/other", file, none},
	}
	for _, c := range cases {
		cmd := exec.Command(p["selabel_lookup"], "-b", "file", "-f", fc, "-k", c.path, "-t", fmt.Sprint(c.mode))
		out, err := cmd.CombinedOutput()
		got := none
		if m := regexp.MustCompile(`Default context: (\S+)`).FindSubmatch(out); err == nil && m != nil {
			got = string(m[1])
		}
		if got != c.want {
			t.Errorf("%s (%o): %q, want %q (%s)", c.path, c.mode, got, c.want, bytes.TrimSpace(out))
		}
	}
}
