package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/collector"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/collector/ops"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/auto"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/idlemem"
	"github.com/collectorhq/collector/internal/logging"
)

var dirFlag = &cli.StringFlag{Name: "config-dir", Value: config.DefaultDir, EnvVars: []string{env.ConfigDir}, Usage: "the collector's config dir"}

// roleEnv opens the engine and builds what every role shares.
func roleEnv(c *cli.Context) (collector.Env, func(), error) {
	log, err := logging.FromContext(c)
	if err != nil {
		return collector.Env{}, nil, err
	}
	eng, err := auto.Open(c.Context, engineConfig(c))
	if err != nil {
		return collector.Env{}, nil, err
	}
	return collector.Env{Dir: c.String("config-dir"), Engine: eng, Log: log, NewImages: collector.TrustImages}, func() { eng.Close() }, nil
}

func roleCommand(name, usage string, run func(*cli.Context, collector.Env) error) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: append([]cli.Flag{dirFlag}, engineFlags...),
		Action: func(c *cli.Context) error {
			e, closeEng, err := roleEnv(c)
			if err != nil {
				return err
			}
			defer closeEng()
			go trimWhenSettled(c.Context, e.Log)
			return run(c, e)
		},
	}
}

// settleTime is how long after its start a role gives back what it
// touched only to start (idlemem.Trim).
const settleTime = 10 * time.Second

func trimWhenSettled(ctx context.Context, log *slog.Logger) {
	t := time.NewTimer(settleTime)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	kb, err := idlemem.Trim()
	if err != nil {
		log.Warn("giving back the memory of the start failed", "err", err)
		return
	}
	log.Info("gave back the memory of the start", "executable_kib", kb)
}

var daemonCommand = roleCommand("daemon", "heartbeat to the platform and keep collector-runner running (the collector-daemon container)",
	func(c *cli.Context, e collector.Env) error { return collector.RunDaemon(c.Context, e) })

var runnerCommand = roleCommand("runner", "lease and run jobs (the collector-runner container)",
	func(c *cli.Context, e collector.Env) error { return collector.RunRunner(c.Context, e) })

var installCommand = &cli.Command{
	Name:  "install",
	Usage: "enroll this host with the platform and start collector-daemon and collector-runner (reads the enrollment token from stdin)",
	Flags: append([]cli.Flag{
		dirFlag,
		&cli.StringFlag{Name: "collector-id", EnvVars: []string{env.CollectorID}, Usage: "the collector's ID, from the platform"},
		&cli.StringFlag{Name: "platform-url", EnvVars: []string{env.PlatformURL}, Usage: "the platform's URL"},
		&cli.StringFlag{Name: "ca-pin", EnvVars: []string{env.CAPin}, Usage: "sha256:... pin of the platform's CA"},
		&cli.StringFlag{Name: "image", EnvVars: []string{env.Image}, Usage: "the collector image to run (default: the image this installer runs from)"},
		&cli.StringFlag{Name: "state-dir", Value: config.DefaultStateDir, EnvVars: []string{env.StateDir}},
		&cli.StringFlag{Name: "network", EnvVars: []string{env.Network}, Usage: "network of the collector's containers (default: the engine's; host to reach a platform on 127.0.0.1)"},
		&cli.StringFlag{Name: "job-network", EnvVars: []string{env.JobNetwork}, Usage: "network of jobs whose integration names none (default: the engine's)"},
		&cli.StringSliceFlag{Name: "insecure-registry", EnvVars: []string{env.InsecureRegistries}, Usage: "registry reached over plain HTTP (127.0.0.1 only, for tests and the demo)"},
		&cli.StringFlag{Name: "trusted-keys", EnvVars: []string{env.TrustedKeys}, Usage: "public key(s) (PEM) image signatures may be made with, or the path of a PEM file mounted into the installer; default: pin the keys of the platform's first policy"},
		&cli.BoolFlag{Name: "allow-insecure-policy", EnvVars: []string{env.AllowInsecurePolicy}, Usage: "accept a platform policy that runs unsigned images (insecureAcceptAnything): test hosts only"},
		&cli.BoolFlag{Name: "quadlet", EnvVars: []string{env.Quadlet}, Usage: "write systemd Quadlet units for collector-daemon and collector-runner instead of creating the containers (Podman)"},
		&cli.StringFlag{Name: "quadlet-dir", Value: install.QuadletDir, EnvVars: []string{env.QuadletDir}, Usage: "where --quadlet writes the units (mount the host's directory into the container installer)"},
		&cli.StringFlag{Name: "selinux-type", Value: "auto", EnvVars: []string{env.SELinuxType}, Usage: "SELinux type of the daemon and runner: auto (the collector module's type when it is loaded, else label=disable), disable, or a type"},
		&cli.DurationFlag{Name: "runner-stall-timeout", EnvVars: []string{env.RunnerStall}, Usage: "how long the runner's job loop may make no progress before its health check fails (default 10m)"},
		&cli.DurationFlag{Name: "image-grace", EnvVars: []string{env.ImageGrace}, Usage: "how long an integration image no job uses any more is kept (default 168h)"},
		&cli.Int64Flag{Name: "job-memory", EnvVars: []string{env.JobMemory}, Usage: "memory, bytes, the collector offers its jobs: the platform leases it only jobs predicted to fit (default: the host's)"},
		&cli.IntFlag{Name: "job-cpus", EnvVars: []string{env.JobCPUs}, Usage: "CPUs the collector offers its jobs (default: the host's)"},
		&cli.StringFlag{Name: "proxy", EnvVars: []string{env.Proxy}, Usage: "HTTP(S) proxy the daemon and runner reach the platform and registries through: http://[user:password@]host:port (kept in the config dir only, 0600); none removes it"},
		&cli.StringFlag{Name: "no-proxy", EnvVars: []string{env.NoProxy}, Usage: "hosts reached without the proxy, comma-separated: names (and their subdomains), .suffixes, IPs, CIDRs, * (none: empty the list)"},
		&cli.StringFlag{Name: "registry-mirror", EnvVars: []string{env.RegistryMirrors}, Usage: "registry mirrors of integration images: PREFIX=LOCATION[,LOCATION...], entries separated by ';' (quay.io=mirror.corp:5000/quay); signatures are still checked against PREFIX; none removes them"},
		&cli.StringFlag{Name: "extra-ca", EnvVars: []string{env.ExtraCA}, Usage: "CA bundle (PEM, or the path of a PEM file mounted into the installer) of a TLS-inspecting or https:// proxy, trusted for the proxy and registries; never for the platform, which stays pinned; none removes it"},
		&cli.DurationFlag{Name: "upgrade-window", EnvVars: []string{env.UpgradeWindow}, Usage: "how long a new runner or daemon has to become healthy in an upgrade before it is rolled back (default 2m)"},
		&cli.StringFlag{Name: "name-prefix", EnvVars: []string{env.NamePrefix}, Usage: "start the names of the collector's containers with this (e.g. b- for b-collector-daemon), so that several collectors share one engine"},
	}, engineFlags...),
	Action: func(c *cli.Context) error {
		e, closeEng, err := roleEnv(c)
		if err != nil {
			return err
		}
		defer closeEng()
		socket := strings.TrimPrefix(c.String("engine-host"), "unix://")
		if socket == "" {
			socket = defaultSocket(e.Engine.Kind())
		}
		image := c.String("image")
		if image == "" {
			image = ownImage()
		}
		keys, err := trustedKeys(c.String("trusted-keys"))
		if err != nil {
			return err
		}
		extraCA, err := extraCA(c.String("extra-ca"))
		if err != nil {
			return err
		}
		var noProxy []string
		if c.IsSet("no-proxy") {
			noProxy = []string{}
			if v := c.String("no-proxy"); v != install.ProxyNone {
				noProxy = egress.ParseNoProxy(v)
			}
		}
		var mirrors []egress.Mirror
		if c.IsSet("registry-mirror") {
			mirrors = []egress.Mirror{}
			if v := c.String("registry-mirror"); v != install.ProxyNone {
				if mirrors, err = egress.ParseMirrors(v); err != nil {
					return fmt.Errorf("%w (--registry-mirror, %s)", err, env.RegistryMirrors)
				}
			}
		}
		out, closeLog := installLog(c.String("state-dir"), c.App.Writer)
		defer closeLog()
		_, err = install.Install(c.Context, e.Engine, install.Options{
			Dir: c.String("config-dir"), StateDir: c.String("state-dir"),
			CollectorID: c.String("collector-id"), PlatformURL: c.String("platform-url"), CAPin: c.String("ca-pin"),
			Token: os.Stdin, Image: image, EngineSocket: socket, EngineKind: e.Engine.Kind(),
			SecretDir: c.String("secret-dir"), Network: c.String("network"), JobNetwork: c.String("job-network"),
			InsecureRegistries: c.StringSlice("insecure-registry"),
			Trust:              install.TrustOptions{Keys: keys, AllowInsecure: c.Bool("allow-insecure-policy")},
			HTTPClient: func(pin, platformURL string, eg egress.Settings) (*http.Client, error) {
				return collector.PlatformHTTPClient(pin, platformURL, eg, e.Log)
			},
			NewImages: func(policy json.RawMessage, insecure []string, eg egress.Settings) (install.Images, error) {
				return collector.TrustImages(collector.ImagesConfig{Policy: policy, Insecure: insecure, Egress: eg, Engine: e.Engine, Log: e.Log})
			},
			Out:         out,
			SELinuxType: c.String("selinux-type"),
			Quadlet:     c.Bool("quadlet"), QuadletDir: c.String("quadlet-dir"),
			RunnerStall: c.Duration("runner-stall-timeout"), ImageGrace: c.Duration("image-grace"),
			JobMemory: c.Int64("job-memory"), JobCPUs: c.Int("job-cpus"), NamePrefix: c.String("name-prefix"), UpgradeWindow: c.Duration("upgrade-window"),
			Proxy: c.String("proxy"), NoProxy: noProxy, ExtraCA: extraCA, RegistryMirrors: mirrors,
		})
		return err
	},
}

// installLog keeps the installer's output in the state dir as well (for
// `collector support-bundle`: the installer container is removed). It
// holds no secret: the token is never printed.
func installLog(stateDir string, w io.Writer) (io.Writer, func()) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return w, func() {}
	}
	f, err := os.OpenFile(filepath.Join(stateDir, ops.InstallLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return w, func() {}
	}
	fmt.Fprintf(f, "--- collector install %s, %s\n", buildinfo.Version, time.Now().UTC().Format(time.RFC3339))
	return io.MultiWriter(w, f), func() { f.Close() }
}

// trustedKeys reads --trusted-keys: PEM itself, or the path of a PEM file.
func trustedKeys(v string) ([]byte, error) {
	if v == "" || strings.Contains(v, "-----BEGIN") {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("trusted keys (%s): %w: give the PEM itself, or mount the file into the installer (-v %s:%s:ro)", env.TrustedKeys, err, v, v)
	}
	return b, nil
}

// extraCA reads --extra-ca: PEM itself, the path of a PEM file, or none.
func extraCA(v string) (string, error) {
	if v == "" || v == install.ProxyNone || strings.Contains(v, "-----BEGIN") {
		return v, nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return "", fmt.Errorf("extra CA (%s): %w: give the PEM itself, or mount the file into the installer (-v %s:%s:ro)", env.ExtraCA, err, v, v)
	}
	return string(b), nil
}

func defaultSocket(k engine.Kind) string {
	if k == engine.KindDocker {
		return engine.DefaultDockerSocket
	}
	return engine.DefaultPodmanSocket
}

// ownImage reads the image this container runs from Podman's
// /run/.containerenv; empty elsewhere (then --image is needed).
func ownImage() string {
	b, err := os.ReadFile("/run/.containerenv")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "image="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
