package ops

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	goselinux "github.com/opencontainers/selinux/go-selinux"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/selinux"
	"github.com/collectorhq/collector/trust"
)

// Result is a check's verdict.
type Result string

// Verdicts: a warning does not fail the doctor; a failure does.
const (
	Pass Result = "pass"
	Warn Result = "warn"
	Fail Result = "fail"
)

// Check is one of the doctor's checks.
type Check struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Result Result `json:"result"`
	Detail string `json:"detail"`
	// Fix says what to do, when the check did not pass.
	Fix string `json:"fix,omitempty"`
}

// Report is the doctor's answer.
type Report struct {
	Checks []Check `json:"checks"`
	Failed int     `json:"failed"`
	Warned int     `json:"warned"`
}

// Thresholds of the checks.
const (
	SkewWarn = 5 * time.Second
	// SkewFail: the collector works in the platform's time (measured from
	// its answers) whatever the skew, but the host checks the platform's
	// TLS certificate in its own, and a generated certificate is valid
	// from an hour before it was made.
	SkewFail      = time.Hour
	DiskWarnBytes = 10 << 30
	DiskFailBytes = 1 << 30
)

// doctor is one run of the checks.
type doctor struct {
	e     *Env
	cfg   *config.Config
	info  *engine.Info
	rep   *Report
	roles []RoleContainer // the daemon and runner, their checks run once
}

func (d *doctor) add(id, name string, r Result, detail, fix string) {
	c := Check{ID: id, Name: name, Result: r, Detail: termsafe.String(detail)}
	if r != Pass {
		c.Fix = termsafe.String(fix)
	}
	switch r {
	case Fail:
		d.rep.Failed++
	case Warn:
		d.rep.Warned++
	}
	d.rep.Checks = append(d.rep.Checks, c)
}

// Doctor runs every check. A check that cannot run because one before it
// failed (no config, no engine) says so and warns.
func Doctor(ctx context.Context, e *Env) *Report {
	d := &doctor{e: e, rep: &Report{Checks: []Check{}}}
	if !d.checkConfig() {
		return d.rep
	}
	d.checkModes()
	d.checkEngine(ctx)
	d.checkRuntime()
	d.checkSELinux()
	d.checkPlatform(ctx)
	d.checkRegistry(ctx)
	d.checkPolicy()
	d.checkDisk()
	d.checkLeftovers(ctx)
	if d.info != nil {
		d.roles = roleContainers(ctx, d.e)
	}
	d.checkContainers()
	d.checkBoot()
	d.checkLogBounds()
	return d.rep
}

func (d *doctor) checkConfig() bool {
	cfg, err := d.e.loadConfig()
	if err != nil {
		d.add("config", "collector config", Fail, err.Error(),
			"install the collector (docs/operations.md, section 1); if it is installed elsewhere, point --config-dir (COLLECTOR_CONFIG_DIR) at its config dir")
		return false
	}
	d.cfg = cfg
	d.add("config", "collector config", Pass, fmt.Sprintf("collector %s of %s, config in %s", cfg.CollectorID, stripUserinfo(cfg.PlatformURL), d.e.Dir), "")
	return true
}

// checkModes: the config dir 0700 and its files 0600, all root's.
func (d *doctor) checkModes() {
	var bad []string
	check := func(p string, want fs.FileMode) {
		st, err := os.Lstat(p)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", p, err))
			return
		}
		if st.Mode().Perm()&^want != 0 {
			bad = append(bad, fmt.Sprintf("%s is %v, want %v", p, st.Mode().Perm(), want))
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 {
			bad = append(bad, fmt.Sprintf("%s is owned by uid %d, want root", p, sys.Uid))
		}
	}
	check(d.e.Dir, 0o700)
	entries, _ := os.ReadDir(d.e.Dir)
	for _, en := range entries {
		if en.Type().IsRegular() {
			check(filepath.Join(d.e.Dir, en.Name()), 0o600)
		}
	}
	if len(bad) > 0 {
		d.add("config-modes", "modes of the config dir", Fail, strings.Join(bad, "; "),
			fmt.Sprintf("chown -R root:root %[1]s && chmod 0700 %[1]s && chmod 0600 %[1]s/*", d.e.Dir))
		return
	}
	d.add("config-modes", "modes of the config dir", Pass, fmt.Sprintf("%s is 0700 and its %d files 0600, all root's", d.e.Dir, len(entries)), "")
}

func (d *doctor) checkEngine(ctx context.Context) {
	fix := "on the host: systemctl enable --now podman.socket (the engine socket), then `collector doctor` again"
	if d.cfg.Engine.Kind == string(engine.KindDocker) {
		fix = "on the host: systemctl enable --now docker.service docker.socket"
	}
	if d.e.Engine == nil {
		d.add("engine", "engine socket", Fail, fmt.Sprintf("the engine socket %s does not answer: %s", d.e.EngineSocket, errString(d.e.EngineErr)), fix)
		return
	}
	cctx, cancel := engineCtx(ctx)
	defer cancel()
	info, err := d.e.Engine.Info(cctx)
	if err != nil {
		d.add("engine", "engine socket", Fail, fmt.Sprintf("the engine socket %s does not answer: %s", d.e.EngineSocket, errString(err)), fix)
		return
	}
	d.info = info
	d.add("engine", "engine socket", Pass, fmt.Sprintf("%s %s answers at %s", info.Kind, info.Version, d.e.EngineSocket), "")
}

func (d *doctor) checkRuntime() {
	if d.info == nil {
		d.add("runtime", "runtime and cgroups", Warn, "not checked: the engine does not answer", "fix the engine check first")
		return
	}
	detail := fmt.Sprintf("OCI runtime %s, cgroup v%s, log driver %s", d.info.Runtime, d.info.CgroupVersion, orUnsaid(d.info.LogDriver))
	if d.info.CgroupVersion == "1" && d.info.Runtime == "crun" {
		d.add("runtime", "runtime and cgroups", Warn, detail+": crun refuses some cgroup v1 layouts",
			"use cgroup v2 (RHEL 9's default; on RHEL 8: grubby --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1) or runtime = \"runc\" in containers.conf")
		return
	}
	d.add("runtime", "runtime and cgroups", Pass, detail, "")
}

func orUnsaid(s string) string {
	if s == "" {
		return "(not said)"
	}
	return s
}

// checkSELinux: the mode, the labels of the daemon and runner, the label
// of the config dir.
func (d *doctor) checkSELinux() {
	hostOn := d.info != nil && d.info.SELinuxEnabled
	label := strings.Join(install.DaemonSpec(d.cfg).SELinuxOptions, ",")
	if !goselinux.GetEnabled() {
		if hostOn {
			d.add("selinux", "SELinux", Warn, "the engine says SELinux is on, but this command cannot see it (it runs in a container without selinuxfs)",
				"run `collector doctor` on the host (the collector RPM's CLI) to check labels; `ls -Z /etc/collector` and `ps -eZ | grep collector` show them")
			return
		}
		d.add("selinux", "SELinux", Pass, "disabled on this host; the daemon and runner are created with "+label+", which keeps working if it is enabled", "")
		return
	}
	mode := map[int]string{goselinux.Enforcing: "enforcing", goselinux.Permissive: "permissive", goselinux.Disabled: "disabled"}[goselinux.EnforceMode()]
	fileLabel, _ := goselinux.FileLabel(d.e.Dir)
	detail := fmt.Sprintf("%s; the daemon and runner run with %s; %s is labelled %s", mode, label, d.e.Dir, fileLabel)
	switch {
	case selinux.ModuleLoaded() && d.cfg.SELinuxType == "":
		d.add("selinux", "SELinux", Warn, detail+"; the collector's SELinux module is loaded but the containers do not use it",
			"run the installer again: it runs the daemon and runner as "+selinux.CollectorType+" instead of label=disable")
	case d.cfg.SELinuxType == "" && mode == "enforcing":
		d.add("selinux", "SELinux", Warn, detail+"; the collector's SELinux module is not installed, so its containers run unconfined",
			"install the collector-selinux RPM (docs/selinux.md), then run the installer again")
	case d.cfg.SELinuxType != "" && !strings.Contains(fileLabel, ":collector_"):
		d.add("selinux", "SELinux", Warn, detail+"; the config dir does not carry the module's file context",
			"restorecon -R -v "+d.e.Dir+" "+d.cfg.StateDir)
	default:
		d.add("selinux", "SELinux", Pass, detail, "")
	}
}

// checkPlatform: DNS, TCP and TLS to the platform with the pinned CA, and
// the clock against the Date of its answer.
func (d *doctor) checkPlatform(ctx context.Context) {
	u, err := url.Parse(d.cfg.PlatformURL)
	if err != nil || u.Host == "" {
		d.add("platform-dns", "platform address", Fail, fmt.Sprintf("platform URL %q: %v", stripUserinfo(d.cfg.PlatformURL), err), "re-enroll with the URL the platform prints")
		return
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	addr := net.JoinHostPort(host, port)
	px, proxied, ok := d.checkProxy(ctx, u, addr)
	if !ok {
		d.skipPlatform("the proxy setting is not usable")
		return
	}
	if proxied {
		d.add("platform-dns", "platform name resolves", Pass, host+" is resolved by the proxy "+px.String(), "")
		conn, err := px.Connect(ctx, addr, d.roots(), d.e.httpTimeout())
		if err != nil {
			d.add("proxy", "proxy", Fail, errString(err),
				"check the proxy's address and credentials (run the installer again with --proxy http://user:password@host:port), "+
					"that it lets this host through, and that it allows CONNECT to port "+port+" (squid: SSL_ports; tinyproxy: ConnectPort)")
			d.skipPlatform("CONNECT through the proxy fails")
			return
		}
		d.add("proxy", "proxy", Pass, fmt.Sprintf("CONNECT to %s through %s succeeded", addr, px), "")
		d.add("platform-tcp", "TCP to the platform", Pass, "tunneled to "+addr+" through the proxy", "")
		d.checkTLS(conn, host)
		d.checkClock(ctx)
		return
	}
	if net.ParseIP(host) != nil {
		d.add("platform-dns", "platform name resolves", Pass, host+" is an address: no lookup", "")
	} else {
		lctx, cancel := context.WithTimeout(ctx, d.e.httpTimeout())
		addrs, err := net.DefaultResolver.LookupHost(lctx, host)
		cancel()
		if err != nil {
			d.add("platform-dns", "platform name resolves", Fail, fmt.Sprintf("%s: %v", host, err),
				"check /etc/resolv.conf and that the host's DNS resolves the platform's name (getent hosts "+host+")")
			d.skipPlatform("the platform's name does not resolve")
			return
		}
		d.add("platform-dns", "platform name resolves", Pass, fmt.Sprintf("%s: %s", host, strings.Join(addrs, ", ")), "")
	}
	conn, err := net.DialTimeout("tcp", addr, d.e.httpTimeout())
	if err != nil {
		d.add("platform-tcp", "TCP to the platform", Fail, fmt.Sprintf("%s: %v", addr, err),
			"let the host reach "+addr+" outbound (firewall, security group), or install with --proxy if it must go through a proxy")
		d.skipPlatform("TCP to the platform fails")
		return
	}
	d.add("platform-tcp", "TCP to the platform", Pass, "connected to "+addr, "")
	d.checkTLS(conn, host)
	d.checkClock(ctx)
}

// checkProxy: the proxy setting parses, and whether the platform is
// reached through it. ok is false when the setting is unusable (a failed
// check was added).
func (d *doctor) checkProxy(ctx context.Context, platform *url.URL, addr string) (px *egress.Proxy, proxied, ok bool) {
	eg := d.cfg.Egress()
	if err := eg.Validate(); err != nil {
		d.add("proxy", "proxy", Fail, errString(err), "run the installer again with a valid --proxy and --extra-ca (or --proxy none)")
		return nil, false, false
	}
	px, _ = eg.ParseProxy()
	if px == nil {
		d.add("proxy", "proxy", Pass, "no proxy configured: the collector connects directly", "")
		return nil, false, true
	}
	if px.ForURL(platform) == nil {
		d.add("proxy", "proxy", Pass, fmt.Sprintf("proxy %s configured; the platform %s is on the no-proxy list: reached directly", px, addr), "")
		return px, false, true
	}
	return px, true, true
}

// roots are the system's plus the config's extra CA (nil: the system's).
func (d *doctor) roots() *x509.CertPool {
	r, _ := d.cfg.Egress().Roots()
	return r
}

func (d *doctor) skipPlatform(why string) {
	for _, c := range [][2]string{{"platform-tls", "TLS to the platform (pinned CA)"}, {"clock", "clock against the platform"}} {
		d.add(c[0], c[1], Warn, "not checked: "+why, "fix the check above first")
	}
}

func (d *doctor) checkTLS(conn net.Conn, host string) {
	defer conn.Close()
	pins, err := d.e.caPins(d.cfg)
	if err == nil {
		_, err = api.PinnedTLSConfig(pins[0])
	}
	if err != nil {
		d.add("platform-tls", "TLS to the platform (pinned CA)", Fail, err.Error(), "re-enroll with the pin the platform prints")
		return
	}
	tc := api.PinsTLSConfig(func() []string { return pins })
	tc.ServerName = host
	tconn := tls.Client(conn, tc)
	tconn.SetDeadline(time.Now().Add(d.e.httpTimeout()))
	pinned := strings.Join(pins, " or ")
	if err := tconn.Handshake(); err != nil {
		fix := "the platform's certificate chain must carry the CA the collector pinned (" + pinned +
			"): a TLS-inspecting proxy in the way, or a platform whose CA changed without the collector taking the change " +
			"(it was away for a whole CA rotation); then enroll again with the pin the platform prints now"
		d.add("platform-tls", "TLS to the platform (pinned CA)", Fail, errString(err), fix)
		return
	}
	d.add("platform-tls", "TLS to the platform (pinned CA)", Pass, "the chain carries the pinned CA "+pinned, "")
}

// checkClock compares this host's clock with the Date of the platform's
// answer. The collector signs and checks expiry in the platform's time,
// so a skew is a warning (the host's logs and everything else on it are
// off), and fails only past what the platform's certificate allows.
func (d *doctor) checkClock(ctx context.Context) {
	before := d.e.now()
	date, err := probePlatform(ctx, d.e, d.cfg)
	after := d.e.now()
	if err != nil {
		d.add("clock", "clock against the platform", Warn, "not checked: the platform's /healthz did not answer: "+errString(err), "fix the platform checks above first")
		return
	}
	skew := -platformOffset(date, before, after) // this host minus the platform
	abs := skew.Abs().Round(time.Second)
	detail := fmt.Sprintf("this host's clock is %s %s the platform's", abs, map[bool]string{true: "ahead of", false: "behind"}[skew > 0])
	fix := "synchronise the clock: systemctl enable --now chronyd; chronyc makestep (and check the platform's clock too)"
	switch {
	case abs > SkewFail:
		d.add("clock", "clock against the platform", Fail, detail+": past an hour a platform certificate just renewed is not yet valid on this host", fix)
	case abs > SkewWarn:
		d.add("clock", "clock against the platform", Warn, detail+" (the collector works in the platform's time, so it keeps running)", fix)
	default:
		d.add("clock", "clock against the platform", Pass, detail, "")
	}
}

// checkRegistry: the registry of the collector's image answers.
func (d *doctor) checkRegistry(ctx context.Context) {
	host, _, _ := strings.Cut(d.cfg.Image, "/")
	if host == "" || !strings.ContainsAny(host, ".:") {
		d.add("registry", "image registry", Warn, "the collector image has no registry in its name: "+d.cfg.Image, "run the installer with a fully qualified image")
		return
	}
	scheme := "https"
	if slices.Contains(d.cfg.InsecureRegistries, host) {
		scheme = "http"
	}
	rctx, cancel := context.WithTimeout(ctx, d.e.httpTimeout())
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
	hc, err := egress.Client(d.cfg.Egress(), d.e.httpTimeout())
	if err != nil {
		d.add("registry", "image registry", Fail, errString(err), "run the installer again with a valid --proxy and --extra-ca (or --proxy none)")
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		d.add("registry", "image registry", Fail, fmt.Sprintf("%s: %s", host, errString(err)),
			"let the host reach "+host+" (its jobs' and the collector's images are pulled from it)")
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		d.add("registry", "image registry", Fail, fmt.Sprintf("%s answered %s to /v2/", host, resp.Status), "check the registry's address and that it serves the registry API")
		return
	}
	d.add("registry", "image registry", Pass, fmt.Sprintf("%s answers (%s)", host, resp.Status), "")
}

// checkPolicy: the signature policy is there and within the trust root.
func (d *doctor) checkPolicy() {
	policy, err := os.ReadFile(filepath.Join(d.e.Dir, config.PolicyFile))
	if err != nil {
		d.add("policy", "image signature policy", Fail, err.Error(), "run the installer again: enrollment writes the platform's policy")
		return
	}
	data, exists, err := config.ReadTrustedKeys(d.e.Dir)
	var root *trust.Root
	switch {
	case err != nil:
	case exists:
		root, err = trust.ParseRoot(data)
	default:
		root, err = trust.PolicyKeys(policy)
	}
	if err == nil {
		err = trust.CheckPolicy(policy, root, d.cfg.AllowInsecurePolicy)
	}
	if err != nil {
		d.add("policy", "image signature policy", Fail, err.Error(), "the platform's policy must require signatures by the trusted keys (docs/images.md)")
		return
	}
	d.add("policy", "image signature policy", Pass, fmt.Sprintf("%s requires signatures by %d trusted key(s)", config.PolicyFile, len(root.Fingerprints())), "")
}

// checkDisk: free space of the engine's container storage.
func (d *doctor) checkDisk() {
	if d.info == nil {
		d.add("disk", "container storage space", Warn, "not checked: the engine does not answer", "fix the engine check first")
		return
	}
	st := d.info.Storage
	free, total := st.TotalBytes-st.UsedBytes, st.TotalBytes
	if total <= 0 {
		var fsst syscall.Statfs_t
		if err := syscall.Statfs(filepath.Join(d.e.hostRoot(), st.Root), &fsst); err != nil {
			d.add("disk", "container storage space", Warn, fmt.Sprintf("the engine does not say how full %s is, and it is not visible here", st.Root),
				"check with df -h "+st.Root)
			return
		}
		free, total = int64(fsst.Bavail)*fsst.Bsize, int64(fsst.Blocks)*fsst.Bsize
	}
	detail := fmt.Sprintf("%s free of %s at %s", gib(free), gib(total), st.Root)
	fix := "free space where the engine keeps images (" + st.Root + "): podman image prune; remove what else fills the disk, or grow it"
	switch {
	case free < DiskFailBytes:
		d.add("disk", "container storage space", Fail, detail+": jobs' images will fail to pull", fix)
	case free < DiskWarnBytes:
		d.add("disk", "container storage space", Warn, detail+": less than 10 GiB", fix)
	default:
		d.add("disk", "container storage space", Pass, detail, "")
	}
}

func (e *Env) hostRoot() string {
	if e.HostRoot == "" {
		return "/"
	}
	return e.HostRoot
}

// checkLeftovers: job containers that are not running, and secret files
// of jobs that are not running: what a crash left.
func (d *doctor) checkLeftovers(ctx context.Context) {
	if d.info == nil {
		d.add("leftovers", "leftover jobs", Warn, "not checked: the engine does not answer", "fix the engine check first")
		return
	}
	cctx, cancel := engineCtx(ctx)
	defer cancel()
	list, err := d.e.Engine.ListContainers(cctx, map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelCollector: d.cfg.CollectorID})
	if err != nil {
		d.add("leftovers", "leftover jobs", Warn, "cannot list job containers: "+errString(err), "run `collector doctor` again")
		return
	}
	running := map[string]bool{}
	var stale []string
	for _, c := range list {
		if c.Running {
			running[c.Name] = true
		} else {
			stale = append(stale, termsafe.String(c.Name))
		}
	}
	var secrets []string
	dir := secretDir(d.cfg)
	if des, err := os.ReadDir(dir); err == nil {
		for _, de := range des {
			if strings.HasPrefix(de.Name(), "collector-job-") && !running[de.Name()] {
				secrets = append(secrets, de.Name())
			}
		}
	}
	if len(stale)+len(secrets) == 0 {
		d.add("leftovers", "leftover jobs", Pass, fmt.Sprintf("%d job container(s), all running; no stray job secret", len(list)), "")
		return
	}
	d.add("leftovers", "leftover jobs", Warn, fmt.Sprintf("job containers not running: %v; job secret files with no running job: %v", stale, secrets),
		"the runner removes them when it starts: `podman restart collector-runner` (or `collector uninstall` to remove everything)")
}

func secretDir(c *config.Config) string {
	if c.Engine.SecretDir != "" {
		return c.Engine.SecretDir
	}
	return engine.DefaultSecretDir
}

// checkContainers: the daemon and runner exist, run and are healthy.
func (d *doctor) checkContainers() {
	if d.info == nil {
		d.add("containers", "collector containers", Warn, "not checked: the engine does not answer", "fix the engine check first")
		return
	}
	fix := "`collector logs daemon` and `collector logs runner` say why; run the installer again to recreate them"
	if d.cfg.SystemdManaged() {
		fix = "journalctl -u collector-daemon -u collector-runner says why; systemctl restart collector-daemon collector-runner"
	}
	for _, c := range d.roles {
		id, name := "container-"+strings.TrimPrefix(c.Name, "collector-"), c.Name+" running and healthy"
		switch {
		case !c.Exists:
			d.add(id, name, Fail, c.Name+" does not exist", fix)
		case !c.Running:
			d.add(id, name, Fail, fmt.Sprintf("%s is %s", c.Name, c.State), fix)
		case c.Health == engine.HealthUnhealthy:
			d.add(id, name, Fail, fmt.Sprintf("%s is unhealthy: %s", c.Name, c.HealthDetail), fix)
		case c.Health == engine.HealthStarting:
			d.add(id, name, Warn, fmt.Sprintf("%s is starting: %s", c.Name, c.HealthDetail), "wait a minute and check again; "+fix)
		case c.Health == "":
			d.add(id, name, Warn, c.Name+" runs without a health check (created by an older installer)", "run the installer again")
		default:
			d.add(id, name, Pass, fmt.Sprintf("%s is running and %s: %s", c.Name, c.Health, c.HealthDetail), "")
		}
	}
}

// checkLogBounds: the engine keeps the containers' logs bounded.
func (d *doctor) checkLogBounds() {
	if d.info == nil {
		return
	}
	var unbounded []string
	for _, c := range d.roles {
		if c.Exists && c.LogMaxBytes == 0 && c.LogDriver != "journald" {
			unbounded = append(unbounded, c.Name)
		}
	}
	if len(unbounded) > 0 {
		d.add("logs", "log bounds", Warn, fmt.Sprintf("the engine keeps the logs of %v without a bound", unbounded), "run the installer again: it bounds them (10 MiB)")
		return
	}
	d.add("logs", "log bounds", Pass, "the engine bounds the collector's own logs (10 MiB a file, or journald's limits)", "")
}

// checkBoot: the collector comes back after a reboot.
func (d *doctor) checkBoot() {
	const id, name = "boot", "comes back after a reboot"
	etc := filepath.Join(d.e.hostRoot(), "etc", "systemd", "system")
	if _, err := os.Stat(etc); err != nil {
		d.add(id, name, Warn, "cannot see the host's systemd configuration here ("+etc+")",
			"run `collector doctor` on the host, or mount the host's / read-only and point --host-root at it")
		return
	}
	if d.cfg.SystemdManaged() {
		d.checkBootQuadlet(etc)
		return
	}
	if d.info == nil {
		d.add(id, name, Warn, "not checked: the engine does not answer", "fix the engine check first")
		return
	}
	if d.info.Kind == engine.KindDocker {
		if !enabled(etc, "docker.service") {
			d.add(id, name, Fail, "docker.service is not enabled: nothing starts dockerd, nor the collector, at boot", "systemctl enable docker.service")
			return
		}
		d.add(id, name, Pass, "docker.service is enabled; dockerd restarts the collector's containers (restart policy unless-stopped)", "")
		return
	}
	var problems []string
	for _, c := range d.roles {
		if c.Exists && c.Restart != string(engine.RestartAlways) {
			problems = append(problems, fmt.Sprintf("%s has restart policy %q, and podman-restart.service starts only those with always (Podman before 5.7)", c.Name, c.Restart))
		}
	}
	for _, unit := range []string{"podman-restart.service", "podman.socket"} {
		if !enabled(etc, unit) {
			problems = append(problems, unit+" is not enabled")
		}
	}
	if len(problems) > 0 {
		d.add(id, name, Fail, "the collector would stay down after a reboot: "+strings.Join(problems, "; "),
			"systemctl enable podman-restart.service podman.socket; and run the installer again if a restart policy is not always (or install with --quadlet)")
		return
	}
	d.add(id, name, Pass, "podman-restart.service and podman.socket are enabled, and both containers have restart policy always", "")
}

func (d *doctor) checkBootQuadlet(etc string) {
	var missing []string
	for _, n := range d.e.roleNames() {
		found := false
		for _, dir := range []string{"etc/containers/systemd", "usr/share/containers/systemd"} {
			if _, err := os.Stat(filepath.Join(d.e.hostRoot(), dir, n+".container")); err == nil {
				found = true
			}
		}
		if !found {
			missing = append(missing, n+".container")
		}
	}
	if !enabled(etc, "podman.socket") {
		missing = append(missing, "podman.socket enabled")
	}
	if len(missing) > 0 {
		d.add("boot", "comes back after a reboot", Fail, "systemd supervises the collector, but these are missing: "+strings.Join(missing, ", "),
			"run `collector install --quadlet` again; systemctl enable podman.socket")
		return
	}
	d.add("boot", "comes back after a reboot", Pass, "Quadlet units for both containers (WantedBy=multi-user.target), podman.socket enabled", "")
}

// enabled reports whether a unit is enabled: linked into some target's
// wants under /etc/systemd/system.
func enabled(etc, unit string) bool {
	matches, _ := filepath.Glob(filepath.Join(etc, "*.wants", unit))
	return len(matches) > 0
}

// WriteReport writes the doctor's report for people.
func WriteReport(w io.Writer, r *Report) {
	mark := map[Result]string{Pass: "PASS", Warn: "WARN", Fail: "FAIL"}
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s  %-36s %s\n", mark[c.Result], c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(w, "      %-36s fix: %s\n", "", c.Fix)
		}
	}
	fmt.Fprintf(w, "%d checks: %d failed, %d warned\n", len(r.Checks), r.Failed, r.Warned)
}
