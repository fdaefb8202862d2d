package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/collector"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/auto"
	"github.com/collectorhq/collector/internal/env"
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
			return run(c, e)
		},
	}
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
		_, err = install.Install(c.Context, e.Engine, install.Options{
			Dir: c.String("config-dir"), StateDir: c.String("state-dir"),
			CollectorID: c.String("collector-id"), PlatformURL: c.String("platform-url"), CAPin: c.String("ca-pin"),
			Token: os.Stdin, Image: image, EngineSocket: socket, EngineKind: e.Engine.Kind(),
			SecretDir: c.String("secret-dir"), Network: c.String("network"), JobNetwork: c.String("job-network"),
			InsecureRegistries: c.StringSlice("insecure-registry"),
			Trust:              install.TrustOptions{Keys: keys, AllowInsecure: c.Bool("allow-insecure-policy")},
			HTTPClient:         func(pin string) (*http.Client, error) { return collector.PlatformHTTPClient(pin, e.Log) },
			NewImages: func(policy json.RawMessage, insecure []string) (install.Images, error) {
				return collector.TrustImages(policy, insecure, e.Engine, e.Log)
			},
			Out: c.App.Writer,
		})
		return err
	},
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
