// Package install is the collector image's installer role: it checks the
// engine, enrolls the collector (once), verifies and pulls the collector
// image by digest, and creates collector-daemon and collector-runner. Run
// twice, it changes nothing and says so.
package install

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/selinux"
)

// Images verifies an image against the signature policy and pulls it by
// digest, returning name@sha256:...
type Images interface {
	VerifyAndPull(ctx context.Context, ref string) (string, error)
}

// Options are the installer's inputs, from the install command's
// environment and mounts.
type Options struct {
	Dir         string // config dir, /etc/collector
	StateDir    string // /var/lib/collector
	CollectorID string
	PlatformURL string
	CAPin       string
	// Token is where the one-time enrollment token is read from (stdin):
	// never from the environment or the command line.
	Token io.Reader
	// Image is the collector image to run (a tag or digest reference).
	Image string
	// EngineSocket is the host path of the engine socket.
	EngineSocket string
	EngineKind   engine.Kind
	SecretDir    string
	Network      string
	JobNetwork   string
	// InsecureRegistries may be reached over plain HTTP (127.0.0.1 registries in tests and the demo).
	InsecureRegistries []string
	// Trust is the operator's say over the image trust root.
	Trust TrustOptions
	// HTTPClient returns the client for a platform pinned to the CA pin,
	// through the proxy of eg, if any.
	HTTPClient func(pin, platformURL string, eg egress.Settings) (*http.Client, error)
	// NewImages returns the verifier for the policy the platform gave.
	NewImages func(policy json.RawMessage, insecureRegistries []string, eg egress.Settings) (Images, error)
	Out       io.Writer
	Now       func() time.Time
	// SELinuxType is the SELinux type the daemon and runner run as: ""
	// or "auto" (the collector module's type when ModuleLoaded says it is
	// loaded, else labels disabled), "disable", or a type.
	SELinuxType string
	// ModuleLoaded reports whether the collector's SELinux module is
	// loaded (default selinux.ModuleLoaded).
	ModuleLoaded func() bool
	// Quadlet writes systemd Quadlet units into QuadletDir instead of
	// creating the containers: systemd runs them (Podman only).
	Quadlet    bool
	QuadletDir string
	// RunnerStall and ImageGrace override the defaults (0 keeps what the
	// config has).
	RunnerStall time.Duration
	ImageGrace  time.Duration
	// JobMemory and JobCPUs bound what the collector offers its jobs (0
	// keeps what the config has: the host's by default).
	JobMemory int64
	JobCPUs   int
	// NamePrefix starts the names of the collector's containers (a
	// re-install without one keeps the config's).
	NamePrefix string
	// UpgradeWindow overrides how long an upgrade waits for health.
	UpgradeWindow time.Duration
	// Proxy, NoProxy and ExtraCA are the collector's egress (package
	// egress): "" keeps what the config has, ProxyNone removes it. They
	// are stored in the config dir only.
	Proxy   string
	NoProxy []string
	ExtraCA string
	// RegistryMirrors replace the config's when not nil (empty: none).
	RegistryMirrors []egress.Mirror
}

// ProxyNone, given as the proxy or the extra CA, removes it from the config.
const ProxyNone = "none"

// egressOf is the egress the install uses: the options over the config's.
func egressOf(c *config.Config, o Options) egress.Settings {
	var cc config.Config
	if c != nil {
		cc = *c
	}
	cc = withEgressOptions(cc, o)
	return cc.Egress()
}

// withEgressOptions is c with the proxy options of this run.
func withEgressOptions(c config.Config, o Options) config.Config {
	switch o.Proxy {
	case "":
	case ProxyNone:
		c.Proxy, c.NoProxy = "", nil
	default:
		c.Proxy = o.Proxy
	}
	if o.NoProxy != nil {
		c.NoProxy = nil
		if len(o.NoProxy) > 0 {
			c.NoProxy = o.NoProxy
		}
	}
	switch o.ExtraCA {
	case "":
	case ProxyNone:
		c.ExtraCA = ""
	default:
		c.ExtraCA = o.ExtraCA
	}
	if o.RegistryMirrors != nil {
		c.RegistryMirrors = nil
		if len(o.RegistryMirrors) > 0 {
			c.RegistryMirrors = o.RegistryMirrors
		}
	}
	return c
}

// checkEgress validates the proxy options before anything is done.
func checkEgress(o Options) error {
	eg := egressOf(nil, o)
	if err := eg.Validate(); err != nil {
		return fmt.Errorf("%w (--proxy, --no-proxy, --extra-ca, --registry-mirror)", err)
	}
	return nil
}

// Result says what the installer did.
type Result struct {
	Enrolled bool     // false: an existing enrollment was kept
	Image    string   // the digest reference the containers run
	Changed  []string // containers created or replaced
}

// Install runs the steps in order; each prints a line.
func Install(ctx context.Context, eng engine.Engine, o Options) (*Result, error) {
	p := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }
	if o.NamePrefix != "" && !config.NamePrefixPattern.MatchString(o.NamePrefix) {
		return nil, fmt.Errorf("name prefix %q: want 1-31 of a-z 0-9 _ . - starting with a letter or digit and ending in -, e.g. b-", o.NamePrefix)
	}
	if err := checkEgress(o); err != nil {
		return nil, err
	}
	info, err := eng.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("check engine at %s: %w (on the host: systemctl enable --now podman.socket, and mount the socket's directory into the installer: -v /run/podman:/run/podman)", o.EngineSocket, err)
	}
	p("[1/4] engine: %s %s at %s (cgroup v%s, SELinux %v)", info.Kind, info.Version, o.EngineSocket, info.CgroupVersion, info.SELinuxEnabled)
	if o.Quadlet && info.Kind != engine.KindPodman {
		return nil, fmt.Errorf("--quadlet writes units for Podman's Quadlet, and the engine at %s is %s: install without --quadlet", o.EngineSocket, info.Kind)
	}
	secretDir, err := checkSecretDir(o.SecretDir)
	if err != nil {
		return nil, err
	}
	p("      job secrets: files on the tmpfs at %s", secretDir)
	if _, dedicated := SocketMount(o.EngineSocket); !dedicated {
		p("      note: the engine socket %s sits in %s with the host's other files, so the collector's containers mount the socket itself: "+
			"if the engine ever recreates it (e.g. dockerd restarted with live restore and without socket activation), run `%s restart %s %s`; "+
			"a socket in a directory of its own avoids that (e.g. dockerd -H unix:///run/docker-api/docker.sock, and COLLECTOR_ENGINE_HOST to match)",
			o.EngineSocket, filepath.Dir(o.EngineSocket), info.Kind, o.NamePrefix+DaemonName, o.NamePrefix+RunnerName)
	}

	cfg, enrolled, err := enroll(ctx, o, info, p)
	if err != nil {
		return nil, err
	}
	policy, err := os.ReadFile(o.Dir + "/" + config.PolicyFile)
	if err != nil {
		return nil, fmt.Errorf("read image policy: %w", err)
	}
	if _, err := ApprovePolicy(o.Dir, policy, o.Trust, p); err != nil {
		return nil, err
	}
	eg := egressOf(cfg, o)
	sayEgress(eg, p)
	images, err := o.NewImages(policy, cfg.InsecureRegistries, eg)
	if err != nil {
		return nil, fmt.Errorf("image policy: %w", err)
	}
	digestRef, err := images.VerifyAndPull(ctx, o.Image)
	if err != nil {
		return nil, fmt.Errorf("collector image %s refused: %w", o.Image, err)
	}
	p("[3/4] image: %s verified and pulled as %s", o.Image, digestRef)
	egressChanged := false
	if updated := withInstallOptions(*cfg, o, digestRef, roleSELinuxType(o)); !reflect.DeepEqual(updated, *cfg) {
		egressChanged = !enrolled && !reflect.DeepEqual(updated.Egress(), cfg.Egress())
		*cfg = updated
		if err := saveConfig(o.Dir, cfg); err != nil {
			return nil, err
		}
	}
	sayLabels(cfg, info, p)
	res := &Result{Enrolled: enrolled, Image: digestRef}
	if o.Quadlet {
		if egressChanged {
			p("      egress settings changed: the daemon and runner read them at start; restart them: systemctl restart %s.service %s.service", cfg.DaemonName(), cfg.RunnerName())
		}
		return res, installQuadlet(ctx, eng, o, cfg, res, p)
	}
	// The runner first: the daemon, once up, brings back a missing runner.
	for _, spec := range []*engine.ContainerSpec{RunnerSpec(cfg), DaemonSpec(cfg)} {
		what, err := ensure(ctx, eng, spec)
		if err != nil {
			return nil, err
		}
		if what == "unchanged" && egressChanged {
			// The spec holds no proxy (its credentials stay in the config
			// dir): restart, so the role reads the new settings.
			if what, err = restart(ctx, eng, spec.Name); err != nil {
				return nil, err
			}
		}
		if what != "unchanged" {
			res.Changed = append(res.Changed, spec.Name)
		}
		p("[4/4] container %s: %s", spec.Name, what)
	}
	sayBoot(cfg, p)
	if !res.Enrolled && len(res.Changed) == 0 {
		p("done: nothing changed; collector %s is installed and running", cfg.CollectorID)
	} else {
		p("done: collector %s installed; `%s ps` shows %s and %s", cfg.CollectorID, info.Kind, cfg.DaemonName(), cfg.RunnerName())
	}
	return res, nil
}

// sayEgress says what the proxy is used for, without its password.
func sayEgress(eg egress.Settings, p func(string, ...any)) {
	for _, m := range eg.Mirrors {
		p("      registry mirror: %s from %s (signatures checked against %s)", m.Prefix, strings.Join(m.Locations, ", "), m.Prefix)
	}
	px, _ := eg.ParseProxy()
	if px == nil {
		if len(eg.ExtraCA) > 0 {
			p("      egress: no proxy; the extra CA bundle is trusted for image registries")
		}
		return
	}
	np := "none"
	if len(eg.NoProxy) > 0 {
		np = strings.Join(eg.NoProxy, ",")
	}
	p("      egress: the daemon and runner reach the platform (CONNECT tunnel, CA pin kept) and registries through %s (no proxy for: %s); "+
		"the runner fetches integration images through it and loads them into the engine; "+
		"the engine pulls the collector's own image with its own proxy settings (docs/collector.md, Behind a proxy)", px, np)
}

// roleSELinuxType resolves Options.SELinuxType: "" means labels disabled.
func roleSELinuxType(o Options) string {
	switch o.SELinuxType {
	case "", "auto":
		loaded := selinux.ModuleLoaded
		if o.ModuleLoaded != nil {
			loaded = o.ModuleLoaded
		}
		if loaded() {
			return selinux.CollectorType
		}
		return ""
	case selinux.OptionDisable:
		return ""
	}
	return o.SELinuxType
}

// sayLabels says how the daemon and runner are labelled, and why.
func sayLabels(c *config.Config, info *engine.Info, p func(string, ...any)) {
	switch {
	case c.SELinuxType != "":
		p("      SELinux: the daemon and runner run as %s (the collector's SELinux module); jobs stay container_t, each at its own MCS level", c.SELinuxType)
	case info.SELinuxEnabled:
		p("      SELinux: the collector's SELinux module is not loaded, so the daemon and runner run with labels disabled (label=disable) to reach the engine socket; " +
			"jobs stay container_t, each at its own MCS level. Install the collector-selinux RPM and run the installer again to confine them (docs/selinux.md)")
	default:
		p("      SELinux: off on this host; the daemon and runner are created with label=disable, so they keep working if SELinux is turned on")
	}
}

// sayBoot says plainly what brings the collector back after a reboot.
func sayBoot(c *config.Config, p func(string, ...any)) {
	if engine.Kind(c.Engine.Kind) == engine.KindDocker {
		p("      at boot: dockerd restarts %s and %s (restart policy unless-stopped) if docker.service is enabled: systemctl enable docker.service", c.DaemonName(), c.RunnerName())
		return
	}
	p("      at boot: Podman has no daemon to restart containers; podman-restart.service starts those with restart policy always, as %s and %s have. "+
		"RHEL does not enable it: run once on the host `systemctl enable podman-restart.service podman.socket`, or the collector stays down after a reboot. "+
		"(Or install with --quadlet for systemd units.) `collector doctor` checks it.", c.DaemonName(), c.RunnerName())
}

// installQuadlet writes the units and replaces containers the engine
// supervised: systemd runs them from now on.
func installQuadlet(ctx context.Context, eng engine.Engine, o Options, cfg *config.Config, res *Result, p func(string, ...any)) error {
	dir := o.QuadletDir
	if dir == "" {
		dir = QuadletDir
	}
	paths, changed, err := WriteQuadletUnits(dir, cfg)
	if err != nil {
		return fmt.Errorf("%w (the container installer needs the host's directory mounted: -v %s:%s)", err, dir, dir)
	}
	for _, name := range []string{cfg.DaemonName(), cfg.RunnerName()} {
		c, err := eng.InspectContainer(ctx, name)
		if err != nil || c.Labels[LabelSystemdUnit] != "" {
			continue
		}
		if err := eng.RemoveContainer(ctx, c.ID, true); err != nil {
			return fmt.Errorf("remove %s, which the engine ran: %w", name, err)
		}
		p("[4/4] container %s: removed (systemd runs it from its unit now)", name)
		changed = true
	}
	what := "unchanged"
	if changed {
		what = "written"
		res.Changed = append(res.Changed, paths...)
	}
	p("[4/4] units: %s %s", strings.Join(paths, ", "), what)
	if changed {
		p("      next, on the host: systemctl daemon-reload && systemctl restart %s.service %s.service", cfg.DaemonName(), cfg.RunnerName())
	}
	p("      at boot: systemd starts both units (WantedBy=multi-user.target) after podman.socket; `collector doctor` checks it")
	p("done: collector %s installed as Quadlet units", cfg.CollectorID)
	return nil
}

// withInstallOptions is the config with what this run of the installer
// sets: the image, whether an insecure policy is allowed, where the engine
// socket and the secret dir are (a re-install moves them), the daemon's
// and runner's SELinux type, their supervisor, and the optional bounds.
func withInstallOptions(c config.Config, o Options, image, selinuxType string) config.Config {
	c = withEgressOptions(c, o)
	c.Image = image
	c.AllowInsecurePolicy = o.Trust.AllowInsecure
	c.SELinuxType = selinuxType
	c.Supervisor = config.SupervisorEngine
	if o.Quadlet {
		c.Supervisor = config.SupervisorSystemd
	}
	if o.RunnerStall > 0 {
		c.RunnerStallSec = int(o.RunnerStall / time.Second)
	}
	if o.ImageGrace > 0 {
		c.ImageGraceSec = int(o.ImageGrace / time.Second)
	}
	if o.JobMemory > 0 {
		c.JobMemoryBytes = o.JobMemory
	}
	if o.JobCPUs > 0 {
		c.JobCPUs = o.JobCPUs
	}
	if o.NamePrefix != "" {
		c.NamePrefix = o.NamePrefix
	}
	if o.UpgradeWindow > 0 {
		c.UpgradeWindowSec = int(o.UpgradeWindow / time.Second)
	}
	if o.EngineSocket != "" {
		c.Engine.Socket = o.EngineSocket
	}
	if o.SecretDir != "" {
		c.Engine.SecretDir = o.SecretDir
	}
	return c
}

// checkSecretDir makes sure the job secret dir exists and is on a tmpfs
// before anything else happens (the enrollment token is burned on use).
func checkSecretDir(dir string) (string, error) {
	if dir == "" {
		dir = engine.DefaultSecretDir
	}
	if err := engine.CheckTmpfs(dir); err != nil {
		return "", fmt.Errorf("job secret dir: %w (the install command creates it on the host and mounts it into the installer: -v %s:%s)", err, dir, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("job secret dir: %w", err)
	}
	return dir, nil
}

// enroll keeps an existing enrollment of the same collector, or enrolls
// with the one-time token and writes the config dir.
func enroll(ctx context.Context, o Options, info *engine.Info, p func(string, ...any)) (*config.Config, bool, error) {
	if config.Exists(o.Dir) {
		cfg, _, err := config.Load(o.Dir)
		if err != nil {
			return nil, false, err
		}
		if o.CollectorID != "" && cfg.CollectorID != o.CollectorID {
			return nil, false, fmt.Errorf("%s holds collector %s, not %s: run `collector uninstall` first to enroll another", o.Dir, cfg.CollectorID, o.CollectorID)
		}
		p("[2/4] enrollment: %s already enrolled as %s on %s; keeping it (the token is not needed)", o.Dir, cfg.CollectorID, cfg.EnrolledAt.Format(time.RFC3339))
		return cfg, false, nil
	}
	switch {
	case o.CollectorID == "":
		return nil, false, errors.New("no collector ID: set COLLECTOR_ID as the install command from the platform does")
	case o.PlatformURL == "":
		return nil, false, errors.New("no platform URL: set COLLECTOR_PLATFORM_URL")
	case o.CAPin == "":
		return nil, false, errors.New("no CA pin: set COLLECTOR_CA_PIN (sha256:...) as the install command does")
	}
	token, err := readToken(o.Token)
	if err != nil {
		return nil, false, err
	}
	keys, err := config.NewKeys()
	if err != nil {
		return nil, false, err
	}
	hc, err := o.HTTPClient(o.CAPin, o.PlatformURL, egressOf(nil, o))
	if err != nil {
		return nil, false, err
	}
	client := api.NewCollectorClient(o.PlatformURL, o.CollectorID, nil, "", hc)
	resp, err := client.Enroll(ctx, api.EnrollRequest{
		CollectorID: o.CollectorID, Token: token,
		IdentityPublicKey: keys.Identity.Public().(ed25519.PublicKey), HPKEPublicKey: keys.HPKE.PublicKey(),
	})
	if err != nil {
		return nil, false, fmt.Errorf("enroll with %s: %w", o.PlatformURL, err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	cfg := &config.Config{
		CollectorID: o.CollectorID, PlatformURL: o.PlatformURL, CAPin: o.CAPin, Audience: resp.Audience,
		PlatformSigningKey: resp.PlatformSigningKey, HeartbeatIntervalSec: resp.HeartbeatIntervalSec,
		EnrolledAt: now().UTC(), Dir: o.Dir, StateDir: o.StateDir, Network: o.Network, JobNetwork: o.JobNetwork,
		InsecureRegistries: o.InsecureRegistries,
		Engine:             config.EngineConfig{Kind: string(info.Kind), Socket: o.EngineSocket, SecretDir: o.SecretDir},
	}
	if err := cfg.Validate(); err != nil {
		return nil, false, fmt.Errorf("enrollment answer: %w", err)
	}
	if len(resp.ImagePolicy) == 0 {
		return nil, false, errors.New("the platform sent no image signature policy: configure one on the platform (--image-policy)")
	}
	if err := config.Save(o.Dir, cfg, keys); err != nil {
		return nil, false, fmt.Errorf("write %s: %w", o.Dir, err)
	}
	if err := config.WriteFile(o.Dir+"/"+config.PolicyFile, resp.ImagePolicy); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, false, err
	}
	if err := config.ForgetPlatformKeys(o.StateDir); err != nil {
		return nil, false, err
	}
	p("[2/4] enrollment: enrolled as %s with %s; keys and config in %s (0700)", cfg.CollectorID, o.PlatformURL, o.Dir)
	return cfg, true, nil
}

func saveConfig(dir string, c *config.Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return config.WriteFile(dir+"/"+config.ConfigFile, append(b, '\n'))
}

// readToken reads one line: the enrollment token, pasted or piped in.
func readToken(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no enrollment token: pipe it to the installer's stdin (podman run -i)")
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read enrollment token: %w", err)
	}
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", errors.New("no enrollment token on stdin: paste it, or pipe it in (podman run -i ...)")
	}
	return tok, nil
}

// ensure creates the container, or replaces one whose spec or image
// changed, and makes sure it runs.
func ensure(ctx context.Context, eng engine.Engine, spec *engine.ContainerSpec) (string, error) {
	cur, err := eng.InspectContainer(ctx, spec.Name)
	what := "created"
	switch {
	case errors.Is(err, engine.ErrNotFound):
	case err != nil:
		return "", err
	case cur.Labels[LabelSpec] == spec.Labels[LabelSpec]:
		if cur.Running {
			return "unchanged", nil
		}
		if err := eng.StartContainer(ctx, cur.ID); err != nil {
			return "", fmt.Errorf("start %s: %w", spec.Name, err)
		}
		return "started", nil
	default:
		if err := eng.RemoveContainer(ctx, cur.ID, true); err != nil {
			return "", fmt.Errorf("replace %s: %w", spec.Name, err)
		}
		what = "replaced"
	}
	id, err := eng.CreateContainer(ctx, spec)
	if errors.Is(err, engine.ErrConflict) {
		// Created meanwhile by the other side (the daemon bringing back
		// its runner, or an installer run at the same time): check again.
		if cur, ierr := eng.InspectContainer(ctx, spec.Name); ierr == nil && cur.Labels[LabelSpec] == spec.Labels[LabelSpec] {
			return "created by the daemon", nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("create %s: %w", spec.Name, err)
	}
	if err := eng.StartContainer(ctx, id); err != nil {
		return "", fmt.Errorf("start %s: %w", spec.Name, err)
	}
	return what, nil
}

// restart stops and starts a container whose settings in the config dir
// changed.
func restart(ctx context.Context, eng engine.Engine, name string) (string, error) {
	cur, err := eng.InspectContainer(ctx, name)
	if err != nil {
		return "", err
	}
	if err := eng.StopContainer(ctx, cur.ID, 10*time.Second); err != nil {
		return "", fmt.Errorf("restart %s: %w", name, err)
	}
	if err := eng.StartContainer(ctx, cur.ID); err != nil {
		return "", fmt.Errorf("restart %s: %w", name, err)
	}
	return "restarted (egress settings changed)", nil
}

// EnsureRunner is what the daemon uses to bring a missing or stopped
// runner back.
func EnsureRunner(ctx context.Context, eng engine.Engine, c *config.Config) (string, error) {
	return ensure(ctx, eng, RunnerSpec(c))
}
