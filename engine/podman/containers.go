package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	nettypes "go.podman.io/common/libnetwork/types"
	"go.podman.io/image/v5/manifest"

	"github.com/collectorhq/collector/engine"
)

// CreateContainer creates a container from the engine-neutral spec.
func (e *Engine) CreateContainer(ctx context.Context, s *engine.ContainerSpec) (string, error) {
	secretMounts, err := e.secretMounts(s.Secrets)
	if err != nil {
		return "", fmt.Errorf("create container %q: %w", s.Name, err)
	}
	c, cancel := e.call(ctx)
	defer cancel()
	resp, err := containers.CreateWithSpec(c, toSpecGen(s, secretMounts), nil)
	if err != nil {
		return "", mapErr(err, fmt.Sprintf("create container %q", s.Name))
	}
	return resp.ID, nil
}

// secretMounts prepares the files of the spec's secrets and returns their
// bind mounts.
func (e *Engine) secretMounts(secrets []engine.SecretMount) ([]engine.Mount, error) {
	var out []engine.Mount
	for _, sm := range secrets {
		m, err := e.secrets.Mount(sm)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// toSpecGen translates s; secrets come as the bind mounts of their files.
func toSpecGen(s *engine.ContainerSpec, secretMounts []engine.Mount) *specgen.SpecGenerator {
	g := specgen.NewSpecGenerator(s.Image, false)
	g.Name = s.Name
	g.Command = s.Command
	g.Entrypoint = s.Entrypoint
	g.Env = s.Env
	g.Labels = s.Labels
	if s.Restart != "" {
		g.RestartPolicy = string(s.Restart)
	}
	for _, m := range append(slices.Clone(s.Mounts), secretMounts...) {
		opts := []string{"rbind"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		if m.Relabel != engine.RelabelNone {
			opts = append(opts, string(m.Relabel))
		}
		g.Mounts = append(g.Mounts, spec.Mount{Type: "bind", Source: m.Source, Destination: m.Target, Options: opts})
	}
	switch s.Network {
	case "":
	case "host":
		g.NetNS = specgen.Namespace{NSMode: specgen.Host}
	case "none":
		g.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	default:
		g.NetNS = specgen.Namespace{NSMode: specgen.Bridge}
		g.Networks = map[string]nettypes.PerNetworkOptions{s.Network: {}}
	}
	g.ResourceLimits = toResources(s.Resources)
	for _, u := range s.Ulimits {
		g.Rlimits = append(g.Rlimits, spec.POSIXRlimit{Type: u.Name, Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	g.CapDrop = s.CapDrop
	g.CapAdd = s.CapAdd
	g.NoNewPrivileges = ptr(s.NoNewPrivileges)
	g.ReadOnlyFilesystem = ptr(s.ReadOnlyRootfs)
	g.User = s.User
	g.SelinuxOpts = s.SELinuxOptions
	if len(s.SELinuxOptions) > 0 {
		// What podman run --security-opt label=... records, so that
		// inspect (and podman inspect) reads the options back.
		g.Annotations = map[string]string{define.InspectAnnotationLabel: strings.Join(s.SELinuxOptions, ",label=")}
	}
	if s.Privileged {
		g.Privileged = ptr(true)
	}
	for _, t := range s.Tmpfs {
		g.Mounts = append(g.Mounts, spec.Mount{Type: "tmpfs", Source: "tmpfs", Destination: t.Target, Options: engine.TmpfsOptions(t)})
	}
	if h := s.HealthCheck; h != nil {
		g.HealthConfig = &manifest.Schema2HealthConfig{Test: append([]string{"CMD"}, h.Command...),
			Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	if s.Log.MaxBytes > 0 {
		// The engine's driver stays (journald on RHEL bounds itself); a
		// file driver is capped at MaxBytes.
		g.LogConfiguration = &specgen.LogConfig{Size: s.Log.MaxBytes}
	}
	return g
}

func toResources(r engine.Resources) *spec.LinuxResources {
	if r == (engine.Resources{}) {
		return nil
	}
	out := &spec.LinuxResources{}
	if r.MemoryBytes > 0 {
		out.Memory = &spec.LinuxMemory{Limit: &r.MemoryBytes}
	}
	if r.CPUs > 0 {
		period := uint64(100_000)
		quota := int64(r.CPUs * float64(period))
		out.CPU = &spec.LinuxCPU{Quota: &quota, Period: &period}
	}
	if r.Pids > 0 {
		out.Pids = &spec.LinuxPids{Limit: r.Pids}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// StartContainer starts a created container.
func (e *Engine) StartContainer(ctx context.Context, id string) error {
	c, cancel := e.call(ctx)
	defer cancel()
	return mapErr(containers.Start(c, id, nil), "start container "+id)
}

// WaitContainer waits for the container to exit and returns its exit code.
func (e *Engine) WaitContainer(ctx context.Context, id string) (int, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	// The service polls the container state; its 250 ms default
	// interval dominates a short job's run time.
	code, err := containers.Wait(c, id, new(containers.WaitOptions).WithInterval("20ms"))
	if err != nil {
		if ended(ctx) {
			cerr := ctx.Err()
			if cerr == nil {
				cerr = context.DeadlineExceeded
			}
			return 0, fmt.Errorf("wait container %s: %w", id, cerr)
		}
		return 0, mapErr(err, "wait container "+id)
	}
	return int(code), nil
}

// ContainerLogs copies stdout and stderr to their writers, kept apart; a
// follow returns once the container exited and all its output is copied
// exactly once, or with engine.ErrLogIncomplete. The service's own follow
// loses lines (see engine.FollowToExit): the stored log is read in rounds.
func (e *Engine) ContainerLogs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error {
	read := func(ctx context.Context, follow bool, stdout, stderr io.Writer) error {
		return e.logs(ctx, id, follow, stdout, stderr)
	}
	if !follow {
		return read(ctx, false, stdout, stderr)
	}
	wait := func(ctx context.Context) (int, error) { return e.WaitContainer(ctx, id) }
	return engine.FollowToExit(ctx, engine.FollowStored, read, wait, stdout, stderr)
}

func (e *Engine) logs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error {
	c, cancel := e.call(ctx)
	defer cancel()
	opts := new(containers.LogOptions).WithStdout(true).WithStderr(true).WithFollow(follow)
	err := pump(ctx, func(outc, errc chan string) error {
		return containers.Logs(c, id, opts, outc, errc)
	}, stdout, stderr)
	return mapErr(err, "logs of container "+id)
}

// StopContainer stops the container, killing it after timeout.
func (e *Engine) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c, cancel := e.call(ctx)
	defer cancel()
	err := containers.Stop(c, id, new(containers.StopOptions).WithTimeout(durationSeconds(timeout)))
	return mapErr(err, "stop container "+id)
}

// SignalContainer sends signal to the container's main process.
func (e *Engine) SignalContainer(ctx context.Context, id, signal string) error {
	c, cancel := e.call(ctx)
	defer cancel()
	return mapErr(containers.Kill(c, id, new(containers.KillOptions).WithSignal(signal)), "signal container "+id)
}

// RenameContainer renames the container.
func (e *Engine) RenameContainer(ctx context.Context, id, name string) error {
	c, cancel := e.call(ctx)
	defer cancel()
	return mapErr(containers.Rename(c, id, new(containers.RenameOptions).WithName(name)), "rename container "+id)
}

// RemoveContainer removes the container and its anonymous volumes.
func (e *Engine) RemoveContainer(ctx context.Context, id string, force bool) error {
	c, cancel := e.call(ctx)
	defer cancel()
	opts := new(containers.RemoveOptions).WithForce(force).WithVolumes(true)
	if force {
		opts = opts.WithTimeout(0) // kill at once, as Docker's force remove does
	}
	reports, err := containers.Remove(c, id, opts)
	if err != nil {
		return mapErr(err, "remove container "+id)
	}
	var errs []error
	for _, r := range reports {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return mapErr(errors.Join(errs...), "remove container "+id)
}

// InspectContainer describes a container.
func (e *Engine) InspectContainer(ctx context.Context, id string) (*engine.Container, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	d, err := containers.Inspect(c, id, nil)
	if err != nil {
		return nil, mapErr(err, "inspect container "+id)
	}
	out := &engine.Container{
		ID:      d.ID,
		Name:    d.Name,
		Image:   d.ImageName,
		ImageID: d.Image,
		// RestartCount counts the policy's restarts.
		RestartCount: int(d.RestartCount),
	}
	if d.Config != nil {
		out.Labels = d.Config.Labels
	}
	if d.State != nil {
		out.State = d.State.Status
		out.Running = d.State.Running
		out.ExitCode = int(d.State.ExitCode)
		out.OOMKilled = d.State.OOMKilled
		out.StartedAt = d.State.StartedAt
		out.FinishedAt = d.State.FinishedAt
		if d.State.Health != nil {
			out.Health = d.State.Health.Status
		}
	}
	if d.Config != nil && d.Config.Healthcheck != nil && len(d.Config.Healthcheck.Test) > 0 && d.Config.Healthcheck.Test[0] != "NONE" {
		out.HasHealthCheck = true
	}
	if h := d.HostConfig; h != nil {
		out.SecurityOptions = h.SecurityOpt
		if lc := h.LogConfig; lc != nil {
			out.LogDriver = lc.Type
			out.LogMaxBytes = parseSize(lc.Size)
		}
		if h.RestartPolicy != nil {
			out.Restart = engine.RestartPolicy(h.RestartPolicy.Name)
		}
		out.MemoryLimit = h.Memory
		out.ReadOnlyRootfs = h.ReadonlyRootfs
		for _, u := range h.Ulimits {
			out.Ulimits = append(out.Ulimits, engine.Ulimit{Name: engine.UlimitName(u.Name), Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
		}
	}
	return out, nil
}

// ListContainers lists containers carrying every given label.
func (e *Engine) ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	var filter []string
	for k, v := range labels {
		filter = append(filter, k+"="+v)
	}
	opts := new(containers.ListOptions).WithAll(true)
	if len(filter) > 0 {
		opts = opts.WithFilters(map[string][]string{"label": filter})
	}
	list, err := containers.List(c, opts)
	if err != nil {
		return nil, mapErr(err, "list containers")
	}
	out := make([]engine.Container, 0, len(list))
	for _, l := range list {
		ct := engine.Container{
			ID: l.ID, Image: l.Image, ImageID: l.ImageID, Labels: l.Labels,
			State: l.State, Running: l.State == "running", ExitCode: int(l.ExitCode),
		}
		if len(l.Names) > 0 {
			ct.Name = l.Names[0]
		}
		out = append(out, ct)
	}
	return out, nil
}

// ContainerStats takes one sample of the container's usage. Network figures
// are left out: the 4.3 service reports them empty.
func (e *Engine) ContainerStats(ctx context.Context, id string) (*engine.Stats, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	ch, err := containers.Stats(c, []string{id}, new(containers.StatsOptions).WithStream(false).WithInterval(1))
	if err != nil {
		return nil, mapErr(err, "stats of container "+id)
	}
	for r := range ch {
		if r.Error != nil {
			return nil, mapErr(r.Error, "stats of container "+id)
		}
		for _, s := range r.Stats {
			return &engine.Stats{
				MemoryBytes: s.MemUsage,
				MemoryLimit: s.MemLimit,
				CPUPercent:  s.CPU,
				CPUNanos:    s.CPUNano,
				Pids:        s.PIDs,
			}, nil
		}
	}
	return nil, fmt.Errorf("stats of container %s: %w: no sample", id, engine.ErrNotFound)
}

// parseSize reads the log size Podman reports ("10MB", "1.049MB", "" or
// "-1" when unbounded) in bytes; 0 when unbounded or unreadable.
func parseSize(s string) int64 {
	n, err := units.FromHumanSize(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// RunHealthCheck runs the container's health check now and returns its
// health (Podman runs checks from systemd timers; without systemd, only
// on demand). The service's answer carries no log (4.3: "Log": null), so
// the last check's output is read from the container's state.
func (e *Engine) RunHealthCheck(ctx context.Context, id string) (*engine.Health, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	r, err := containers.RunHealthCheck(c, id, nil)
	if err != nil {
		return nil, mapErr(err, "health check of container "+id)
	}
	h := &engine.Health{Status: r.Status, FailingStreak: r.FailingStreak}
	log := r.Log
	if len(log) == 0 {
		if d, err := containers.Inspect(c, id, nil); err == nil && d.State != nil && d.State.Health != nil {
			log = d.State.Health.Log
		}
	}
	if n := len(log); n > 0 {
		h.Output = log[n-1].Output
	}
	return h, nil
}

// ReadLogs copies the container's logs as selected.
func (e *Engine) ReadLogs(ctx context.Context, id string, o engine.LogOptions, stdout, stderr io.Writer) error {
	c, cancel := e.call(ctx)
	defer cancel()
	opts := new(containers.LogOptions).WithStdout(true).WithStderr(true).WithFollow(o.Follow).WithTimestamps(o.Timestamps)
	if !o.Since.IsZero() {
		opts = opts.WithSince(strconv.FormatInt(o.Since.Unix(), 10))
	}
	if o.Tail > 0 {
		opts = opts.WithTail(strconv.Itoa(o.Tail))
	}
	err := pump(ctx, func(outc, errc chan string) error {
		return containers.Logs(c, id, opts, outc, errc)
	}, stdout, stderr)
	if o.Follow && ended(ctx) {
		return nil // a follow ends when the caller stops it
	}
	return mapErr(err, "logs of container "+id)
}
