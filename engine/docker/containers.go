package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/collectorhq/collector/engine"
)

// CreateContainer creates a container from the engine-neutral spec.
func (e *Engine) CreateContainer(ctx context.Context, s *engine.ContainerSpec) (string, error) {
	hc, err := e.hostConfig(s)
	if err != nil {
		return "", fmt.Errorf("create container %q: %w", s.Name, err)
	}
	cfg := &container.Config{
		Image:      s.Image,
		Cmd:        s.Command,
		Entrypoint: s.Entrypoint,
		Labels:     s.Labels,
		User:       s.User,
	}
	if h := s.HealthCheck; h != nil {
		cfg.Healthcheck = &container.HealthConfig{Test: append([]string{"CMD"}, h.Command...),
			Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	for k, v := range s.Env {
		cfg.Env = append(cfg.Env, k+"="+v)
	}
	resp, err := e.cli.ContainerCreate(ctx, cfg, hc, nil, nil, s.Name)
	if err != nil {
		return "", mapErr(err, fmt.Sprintf("create container %q", s.Name))
	}
	return resp.ID, nil
}

func (e *Engine) hostConfig(s *engine.ContainerSpec) (*container.HostConfig, error) {
	hc := &container.HostConfig{
		CapDrop:        s.CapDrop,
		CapAdd:         s.CapAdd,
		ReadonlyRootfs: s.ReadOnlyRootfs,
		Privileged:     s.Privileged,
		NetworkMode:    container.NetworkMode(s.Network),
	}
	if s.Restart != "" {
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyMode(s.Restart)}
	}
	for _, m := range s.Mounts {
		hc.Binds = append(hc.Binds, bind(m.Source, m.Target, m.ReadOnly, m.Relabel))
	}
	// A secret is a root-only file on a tmpfs, bind-mounted read-only.
	for _, sm := range s.Secrets {
		m, err := e.secrets.Mount(sm)
		if err != nil {
			return nil, err
		}
		hc.Binds = append(hc.Binds, bind(m.Source, m.Target, m.ReadOnly, m.Relabel))
	}
	if s.NoNewPrivileges {
		hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges:true")
	}
	for _, o := range s.SELinuxOptions {
		hc.SecurityOpt = append(hc.SecurityOpt, "label="+o)
	}
	r := s.Resources
	hc.Memory = r.MemoryBytes
	hc.NanoCPUs = int64(r.CPUs * 1e9)
	if r.Pids > 0 {
		hc.PidsLimit = &r.Pids
	}
	for _, u := range s.Ulimits {
		hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: u.Name, Soft: int64(u.Soft), Hard: int64(u.Hard)})
	}
	for _, t := range s.Tmpfs {
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[t.Target] = strings.Join(engine.TmpfsOptions(t), ",")
	}
	if l := s.Log; l.MaxBytes > 0 {
		// json-file, whatever the daemon's default: its rotation options
		// are known (another driver would refuse them).
		hc.LogConfig = container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": strconv.FormatInt(l.MaxBytes, 10)}}
		if l.MaxFiles > 0 {
			hc.LogConfig.Config["max-file"] = strconv.Itoa(l.MaxFiles)
		}
	}
	return hc, nil
}

// bind renders a bind mount in the "src:dst:opts" form, the only one that
// carries the SELinux relabel option.
func bind(src, dst string, ro bool, relabel engine.Relabel) string {
	var opts []string
	if ro {
		opts = append(opts, "ro")
	}
	if relabel != engine.RelabelNone {
		opts = append(opts, string(relabel))
	}
	b := src + ":" + dst
	if len(opts) > 0 {
		b += ":" + strings.Join(opts, ",")
	}
	return b
}

// StartContainer starts a created container.
func (e *Engine) StartContainer(ctx context.Context, id string) error {
	return mapErr(e.cli.ContainerStart(ctx, id, container.StartOptions{}), "start container "+id)
}

// WaitContainer waits for the container to stop and returns its exit code.
func (e *Engine) WaitContainer(ctx context.Context, id string) (int, error) {
	okc, errc := e.cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case r := <-okc:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("wait container %s: %s", id, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-errc:
		return 0, mapErr(err, "wait container "+id)
	}
}

// ContainerLogs copies stdout and stderr to their writers, kept apart; a
// follow returns once the container exited and all its output is copied
// exactly once, or with engine.ErrLogIncomplete. dockerd's follow is
// delivered live; Podman's compatible API loses lines in a follow (see
// engine.FollowToExit), so there the stored log is read in rounds.
func (e *Engine) ContainerLogs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error {
	read := func(ctx context.Context, follow bool, stdout, stderr io.Writer) error {
		return e.logs(ctx, id, follow, stdout, stderr)
	}
	if !follow {
		return read(ctx, false, stdout, stderr)
	}
	wait := func(ctx context.Context) (int, error) { return e.WaitContainer(ctx, id) }
	return engine.FollowToExit(ctx, e.follow, read, wait, stdout, stderr)
}

func (e *Engine) logs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error {
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow})
	if err != nil {
		return mapErr(err, "logs of container "+id)
	}
	defer rc.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	_, err = stdcopy.StdCopy(stdout, stderr, rc)
	return mapErr(err, "logs of container "+id)
}

// StopContainer stops the container, killing it after timeout.
func (e *Engine) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int((timeout + time.Second - 1) / time.Second)
	return mapErr(e.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}), "stop container "+id)
}

// SignalContainer sends signal to the container's main process.
func (e *Engine) SignalContainer(ctx context.Context, id, signal string) error {
	return mapErr(e.cli.ContainerKill(ctx, id, signal), "signal container "+id)
}

// RenameContainer renames the container.
func (e *Engine) RenameContainer(ctx context.Context, id, name string) error {
	return mapErr(e.cli.ContainerRename(ctx, id, name), "rename container "+id)
}

// RemoveContainer removes the container and its anonymous volumes.
func (e *Engine) RemoveContainer(ctx context.Context, id string, force bool) error {
	err := e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: force, RemoveVolumes: true})
	return mapErr(err, "remove container "+id)
}

// InspectContainer describes a container.
func (e *Engine) InspectContainer(ctx context.Context, id string) (*engine.Container, error) {
	d, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nil, mapErr(err, "inspect container "+id)
	}
	out := &engine.Container{ID: d.ID, Name: strings.TrimPrefix(d.Name, "/"), ImageID: d.Image, RestartCount: d.RestartCount}
	if d.Config != nil {
		out.Image = d.Config.Image
		out.Labels = d.Config.Labels
	}
	if st := d.State; st != nil {
		out.State = string(st.Status)
		out.Running = st.Running
		out.ExitCode = st.ExitCode
		out.OOMKilled = st.OOMKilled
		out.StartedAt, _ = time.Parse(time.RFC3339Nano, st.StartedAt)
		out.FinishedAt, _ = time.Parse(time.RFC3339Nano, st.FinishedAt)
		if st.Health != nil {
			out.Health = string(st.Health.Status)
		}
	}
	if d.Config != nil && d.Config.Healthcheck != nil && len(d.Config.Healthcheck.Test) > 0 && d.Config.Healthcheck.Test[0] != "NONE" {
		out.HasHealthCheck = true
	}
	if h := d.HostConfig; h != nil {
		out.SecurityOptions = h.SecurityOpt
		out.LogDriver = h.LogConfig.Type
		if n, err := units.RAMInBytes(h.LogConfig.Config["max-size"]); err == nil && n > 0 {
			out.LogMaxBytes = n
		} else if e.podman {
			// Podman's Docker API applies the bound but does not show it.
			var lp struct {
				HostConfig struct{ LogConfig struct{ Size string } }
			}
			if e.libpod(ctx, "/containers/"+url.PathEscape(id)+"/json", &lp) == nil {
				if n, err := units.FromHumanSize(lp.HostConfig.LogConfig.Size); err == nil && n > 0 {
					out.LogMaxBytes = n
				}
			}
		}
		out.Restart = engine.RestartPolicy(h.RestartPolicy.Name)
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
	args := filters.NewArgs()
	for k, v := range labels {
		args.Add("label", k+"="+v)
	}
	list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, mapErr(err, "list containers")
	}
	out := make([]engine.Container, 0, len(list))
	for _, l := range list {
		c := engine.Container{
			ID: l.ID, Image: l.Image, ImageID: l.ImageID, Labels: l.Labels,
			State: string(l.State), Running: l.State == container.StateRunning,
		}
		if len(l.Names) > 0 {
			c.Name = strings.TrimPrefix(l.Names[0], "/")
		}
		out = append(out, c)
	}
	return out, nil
}

// ContainerStats takes one sample of the container's usage. Memory excludes
// the page cache, as `docker stats` shows it.
func (e *Engine) ContainerStats(ctx context.Context, id string) (*engine.Stats, error) {
	r, err := e.cli.ContainerStats(ctx, id, false)
	if err != nil {
		return nil, mapErr(err, "stats of container "+id)
	}
	defer r.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("stats of container %s: decode: %w", id, err)
	}
	mem := s.MemoryStats.Usage
	for _, k := range []string{"total_inactive_file", "inactive_file", "cache"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v < mem {
			mem -= v
			break
		}
	}
	out := &engine.Stats{
		MemoryBytes: mem,
		MemoryLimit: s.MemoryStats.Limit,
		CPUNanos:    s.CPUStats.CPUUsage.TotalUsage,
		Pids:        s.PidsStats.Current,
	}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	if cpuDelta > 0 && sysDelta > 0 {
		cpus := float64(s.CPUStats.OnlineCPUs)
		if cpus == 0 {
			cpus = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
		}
		out.CPUPercent = cpuDelta / sysDelta * cpus * 100
	}
	return out, nil
}

// RunHealthCheck runs the container's health check now (dockerd also runs
// it on its own schedule, which this leaves alone). Podman's Docker API
// has no such schedule without systemd, so there the check is run through
// Podman's own API, as the Podman backend does.
func (e *Engine) RunHealthCheck(ctx context.Context, id string) (*engine.Health, error) {
	d, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nil, mapErr(err, "health check of container "+id)
	}
	if d.Config == nil || d.Config.Healthcheck == nil || len(d.Config.Healthcheck.Test) == 0 || d.Config.Healthcheck.Test[0] == "NONE" {
		return nil, fmt.Errorf("health check of container %s: %w: it has none", id, engine.ErrNotFound)
	}
	var st dockerHealth
	switch {
	case e.podman && d.State != nil && d.State.Running:
		if err := e.libpod(ctx, "/containers/"+url.PathEscape(id)+"/healthcheck", &st); err != nil {
			return nil, fmt.Errorf("health check of container %s: %w", id, err)
		}
		if len(st.Log) == 0 { // the answer carries no log: the state has it
			var lp struct{ State struct{ Health dockerHealth } }
			if e.libpod(ctx, "/containers/"+url.PathEscape(id)+"/json", &lp) == nil {
				st.Log = lp.State.Health.Log
			}
		}
	case d.State != nil && d.State.Health != nil:
		st.Status, st.FailingStreak = string(d.State.Health.Status), d.State.Health.FailingStreak
		for _, l := range d.State.Health.Log {
			st.Log = append(st.Log, struct{ Output string }{l.Output})
		}
		if d.State.Running {
			// dockerd probes on its own schedule (every 30 s for the
			// collector's containers, and API 1.41 has no faster start
			// interval): run the check now, as Podman does, so an upgrade
			// or a drain is seen in seconds. dockerd's own record is left
			// to its schedule.
			out, ok, err := e.execCheck(ctx, id, d.Config.Healthcheck)
			if err != nil {
				return nil, fmt.Errorf("health check of container %s: %w", id, err)
			}
			st.Log = append(st.Log, struct{ Output string }{out})
			if ok {
				st.Status = string(container.Healthy)
			} else if st.Status == string(container.Healthy) {
				// One failure does not make it unhealthy (retries), but it
				// is not healthy now either.
				st.Status = string(container.Starting)
			}
		}
	}
	h := &engine.Health{Status: st.Status, FailingStreak: st.FailingStreak}
	if h.Status == "" {
		h.Status = engine.HealthStarting
	}
	if n := len(st.Log); n > 0 {
		h.Output = st.Log[n-1].Output
	}
	return h, nil
}

// execCheck runs a health check's command in the running container now
// and returns its output (bounded) and whether it passed.
func (e *Engine) execCheck(ctx context.Context, id string, hc *container.HealthConfig) (string, bool, error) {
	var cmd []string
	switch hc.Test[0] {
	case "CMD":
		cmd = hc.Test[1:]
	case "CMD-SHELL":
		cmd = append([]string{"/bin/sh", "-c"}, hc.Test[1:]...)
	default:
		return "", false, fmt.Errorf("unknown health check form %q", hc.Test[0])
	}
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	x, err := e.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", false, mapErr(err, "exec in container "+id)
	}
	att, err := e.cli.ContainerExecAttach(ctx, x.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", false, mapErr(err, "exec in container "+id)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, io.LimitReader(att.Reader, 64<<10)); err != nil && ctx.Err() == nil {
		return "", false, fmt.Errorf("exec in container %s: %w", id, err)
	}
	out.Truncate(min(out.Len(), 4096)) // as much as dockerd keeps of a check's output
	if ctx.Err() != nil {
		return fmt.Sprintf("Health check exceeded timeout (%v)", timeout), false, nil
	}
	r, err := e.cli.ContainerExecInspect(ctx, x.ID)
	if err != nil {
		return "", false, mapErr(err, "exec in container "+id)
	}
	return out.String(), !r.Running && r.ExitCode == 0, nil
}

// dockerHealth is a health state as both APIs give it.
type dockerHealth struct {
	Status        string
	FailingStreak int
	Log           []struct{ Output string }
}

// ReadLogs copies the container's logs as selected.
func (e *Engine) ReadLogs(ctx context.Context, id string, o engine.LogOptions, stdout, stderr io.Writer) error {
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: o.Follow, Timestamps: o.Timestamps}
	if !o.Since.IsZero() {
		opts.Since = strconv.FormatInt(o.Since.Unix(), 10)
	}
	if o.Tail > 0 {
		opts.Tail = strconv.Itoa(o.Tail)
	}
	rc, err := e.cli.ContainerLogs(ctx, id, opts)
	if err != nil {
		return mapErr(err, "logs of container "+id)
	}
	defer rc.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	_, err = stdcopy.StdCopy(stdout, stderr, rc)
	if ctx.Err() != nil && o.Follow {
		return nil // a follow ends when the caller stops it
	}
	return mapErr(err, "logs of container "+id)
}
