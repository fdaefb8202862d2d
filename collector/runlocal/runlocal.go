// Package runlocal runs an integration image once on this host, as the
// collector's runner would, without a platform: `collector run-local IMAGE
// --config FILE`. The container is the runner's (runner.ContainerSpec:
// every capability dropped, no new privileges, a read-only root
// filesystem, limits, a per-job SELinux level, the config as a 0400
// secret at /run/collector/config.json), its stdout is read and checked
// line by line as the runner reads it (runner.ReadRecords), and what the
// runner would upload is counted instead: entities and relationships by
// type, and the refused lines with their reasons. The image's manifest
// (its label) gives the limits and network, and the config is checked
// against its schema before anything runs.
package runlocal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/integration/manifest"
	"github.com/collectorhq/collector/selinux"
)

// Engine is the part of a container engine run-local uses.
type Engine interface {
	InspectImage(ctx context.Context, ref string) (*engine.Image, error)
	PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error)
	CreateContainer(ctx context.Context, spec *engine.ContainerSpec) (string, error)
	StartContainer(ctx context.Context, id string) error
	WaitContainer(ctx context.Context, id string) (int, error)
	ContainerLogs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string, force bool) error
	CreateSecret(ctx context.Context, name string, data []byte) error
	RemoveSecret(ctx context.Context, name string) error
}

var _ Engine = engine.Engine(nil)

// Options say what to run.
type Options struct {
	Image  string
	Config []byte
	// Validate runs the integration's validate mode.
	Validate bool
	// Network overrides the network ("" = "none" when the manifest says
	// the integration needs none, else the engine's default).
	Network string
	// Timeout overrides the manifest's (0 = the manifest's, else the
	// runner's default).
	Timeout time.Duration
	// Pull pulls the image even when the engine has it; a missing image
	// is always pulled. InsecureRegistries are reached over plain HTTP.
	Pull               bool
	InsecureRegistries []string
	// Logs receives the integration's stderr (its logs); Records, when
	// set, every valid record line.
	Logs, Records io.Writer
	// Labels is the SELinux labeler (the zero value asks the host).
	Labels selinux.Labeler
}

// Result is how the run went.
type Result struct {
	Image    string `json:"image"`
	ExitCode int    `json:"exit_code"`
	// Reason names a non-zero exit code (docs/integration-contract.md).
	Reason        string           `json:"reason,omitempty"`
	Entities      int64            `json:"entities"`
	Relationships int64            `json:"relationships"`
	ByType        map[string]int64 `json:"by_type"`
	Refused       int64            `json:"refused"`
	// Refusals are the first refused lines.
	Refusals   []Refusal                     `json:"refusals,omitempty"`
	Validation *integration.ValidationResult `json:"validation,omitempty"`
	Manifest   *ManifestSummary              `json:"manifest,omitempty"`
	// Capped is what the manifest asks above the platform's default job
	// limits, which the run had instead (as a job would).
	Capped   []string      `json:"capped,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
	limits   crypto.Limits
}

// Refusal is one refused output line.
type Refusal struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// ManifestSummary is what the image's manifest said.
type ManifestSummary struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Network    string `json:"network,omitempty"`
	Validation bool   `json:"validation"`
}

// MaxRefusals bounds the refused lines a Result names one by one.
const MaxRefusals = 20

// OK reports whether the run was what the runner would call a success: a
// complete sync (exit 0, no refused line), or a passed validation.
func (r *Result) OK() bool {
	if r.Validation != nil {
		return r.ExitCode == 0 && r.Validation.OK && r.Error == ""
	}
	return r.ExitCode == 0 && r.Refused == 0 && r.Error == ""
}

// ErrRefused: the run did not start (a config the schema refuses, a mode
// the image does not have, an image user the secret cannot be owned by).
var ErrRefused = errors.New("run refused")

// Run runs the image once and returns how it went. An error means the
// run could not happen; a run that failed is a Result that is not OK.
func Run(ctx context.Context, eng Engine, o Options) (*Result, error) {
	img, err := image(ctx, eng, o)
	if err != nil {
		return nil, err
	}
	res := &Result{Image: o.Image, ByType: map[string]int64{}}
	spec, release, err := o.spec(img, res)
	if err != nil {
		return nil, err
	}
	defer release()
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	if err := eng.CreateSecret(ctx, spec.Secrets[0].Name, o.Config); err != nil {
		return nil, fmt.Errorf("create the config secret: %w", err)
	}
	defer eng.RemoveSecret(context.WithoutCancel(ctx), spec.Secrets[0].Name)
	id, err := eng.CreateContainer(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("create the container: %w", err)
	}
	defer eng.RemoveContainer(context.WithoutCancel(ctx), id, true)
	if err := eng.StartContainer(ctx, id); err != nil {
		return nil, fmt.Errorf("start the container: %w", err)
	}
	o.follow(ctx, eng, id, res)
	return res, nil
}

// image inspects the image, pulling it when asked or missing.
func image(ctx context.Context, eng Engine, o Options) (*engine.Image, error) {
	if !o.Pull {
		if img, err := eng.InspectImage(ctx, o.Image); err == nil {
			return img, nil
		} else if !errors.Is(err, engine.ErrNotFound) {
			return nil, fmt.Errorf("inspect %s: %w", o.Image, err)
		}
	}
	host, _, _ := strings.Cut(o.Image, "/")
	img, err := eng.PullImage(ctx, o.Image, engine.PullOptions{Insecure: slices.Contains(o.InsecureRegistries, host)})
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", o.Image, err)
	}
	return img, nil
}

// spec is the runner's container spec for the image, with the manifest's
// limits and network; the config is checked against its schema first.
func (o Options) spec(img *engine.Image, res *Result) (*engine.ContainerSpec, func(), error) {
	var m *manifest.Manifest
	if doc, ok := img.Labels[manifest.Label]; ok {
		var err error
		if m, err = manifest.Parse([]byte(doc)); err != nil {
			return nil, nil, fmt.Errorf("%w: the image's manifest label: %v", ErrRefused, err)
		}
		res.Manifest = &ManifestSummary{Name: m.Name, Version: m.Version, Network: string(m.Network.Access), Validation: m.Validation.Supported}
		if err := m.ValidateConfig(o.Config); err != nil {
			return nil, nil, fmt.Errorf("%w: the config does not match the integration's schema: %v", ErrRefused, err)
		}
		if o.Validate && !m.Validation.Supported {
			return nil, nil, fmt.Errorf("%w: %s has no validate mode (its manifest says validation.supported: false)", ErrRefused, m.Name)
		}
	}
	res.limits, res.Capped = limits(m, o)
	label, err := o.Labels.ForJob()
	if err != nil {
		return nil, nil, err
	}
	name := "collector-local-" + randomID()
	jc := runner.JobContainer{Name: name, SecretName: name, Image: o.Image, ImageUser: img.User,
		Labels: map[string]string{runner.LabelRole: "local"}, Network: network(m, o), Limits: res.limits, SELinuxOptions: label.Options}
	if o.Validate {
		jc.Env = map[string]string{integration.ModeEnv: integration.ModeValidate}
	}
	spec, err := runner.ContainerSpec(jc)
	if err != nil {
		label.Release()
		return nil, nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return spec, label.Release, nil
}

// limits are what the runner gives a job of the image under the
// platform's default job limits (runner.ManifestLimits: the manifest asks,
// never above them), the timeout overridden by the options'. Capped is
// what the manifest asked above them, said in the report: a job gets it
// only from a platform whose job limits allow it.
func limits(m *manifest.Manifest, o Options) (l crypto.Limits, capped []string) {
	l = runner.ManifestLimits(crypto.Limits{}, m, o.Validate)
	if m != nil {
		r, got := m.Resources, runner.JobResources(l)
		if r.MemoryBytes > got.MemoryBytes {
			capped = append(capped, fmt.Sprintf("memory %d MiB (runs with %d MiB; the platform's --job-memory decides)", r.MemoryBytes>>20, got.MemoryBytes>>20))
		}
		if r.Pids > got.Pids {
			capped = append(capped, fmt.Sprintf("pids %d (runs with %d)", r.Pids, got.Pids))
		}
		if !o.Validate && r.Timeout > runner.JobTimeout(l) {
			capped = append(capped, fmt.Sprintf("timeout %v (runs for %v; the platform's --job-timeout decides)", r.Timeout, runner.JobTimeout(l)))
		}
	}
	if o.Timeout > 0 {
		l.TimeoutSec = int64(max(o.Timeout/time.Second, 1))
	}
	return l, capped
}

// network is the option's, else "none" for an integration that needs
// none, else the engine's default.
func network(m *manifest.Manifest, o Options) string {
	if o.Network != "" {
		return o.Network
	}
	if m != nil && m.Network.Access == manifest.NetworkNone {
		return "none"
	}
	return ""
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
