package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/internal/units"
)

// Status is what `collector status` reports.
type Status struct {
	CLIVersion string          `json:"cli_version"`
	Enrollment *Enrollment     `json:"enrollment"`
	Platform   *PlatformStatus `json:"platform,omitempty"`
	Engine     EngineStatus    `json:"engine"`
	Containers []RoleContainer `json:"containers"`
	Jobs       []RunningJob    `json:"jobs_running"`
	// DesiredImage is the image the config says the collector runs;
	// UpToDate whether both containers run it.
	DesiredImage string `json:"desired_image,omitempty"`
	UpToDate     bool   `json:"up_to_date"`
	// Problems name what is wrong, one line each; none when all is well.
	Problems []string `json:"problems"`
}

// Enrollment is who the collector is.
type Enrollment struct {
	CollectorID string    `json:"collector_id"`
	PlatformURL string    `json:"platform_url"`
	CAPin       string    `json:"ca_pin"`
	EnrolledAt  time.Time `json:"enrolled_at"`
	Supervisor  string    `json:"supervisor"`
	SELinux     string    `json:"selinux"` // the daemon's and runner's label
}

// PlatformStatus is whether the platform answers, and what the daemon
// last heard from it.
type PlatformStatus struct {
	URL       string `json:"url"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// LastHeartbeatAck is when the platform last acknowledged the
	// daemon's heartbeat, as the daemon's health check says.
	LastHeartbeatAck *time.Time `json:"last_heartbeat_ack,omitempty"`
	DaemonSays       string     `json:"daemon_says,omitempty"`
	// ClockOffsetMs is the platform's clock minus this host's, from the
	// Date of its answer (to about a second); the collector works in the
	// platform's time.
	ClockOffsetMs int64 `json:"clock_offset_ms"`
}

// EngineStatus is the container engine.
type EngineStatus struct {
	Socket    string        `json:"socket"`
	Reachable bool          `json:"reachable"`
	Error     string        `json:"error,omitempty"`
	Kind      string        `json:"kind,omitempty"`
	Version   string        `json:"version,omitempty"`
	Runtime   string        `json:"runtime,omitempty"`
	Cgroups   string        `json:"cgroup_version,omitempty"`
	SELinux   bool          `json:"selinux_enabled"`
	LogDriver string        `json:"log_driver,omitempty"`
	Storage   *StorageUsage `json:"storage,omitempty"`
}

// StorageUsage is the disk of the engine's container storage.
type StorageUsage struct {
	Root       string `json:"root"`
	TotalBytes int64  `json:"total_bytes,omitempty"`
	UsedBytes  int64  `json:"used_bytes,omitempty"`
	FreeBytes  int64  `json:"free_bytes,omitempty"`
}

// RoleContainer is collector-daemon or collector-runner.
type RoleContainer struct {
	Name         string     `json:"name"`
	Exists       bool       `json:"exists"`
	State        string     `json:"state,omitempty"`
	Running      bool       `json:"running"`
	Health       string     `json:"health,omitempty"`
	HealthDetail string     `json:"health_detail,omitempty"`
	Image        string     `json:"image,omitempty"`
	ImageDigest  string     `json:"image_digest,omitempty"`
	Version      string     `json:"version,omitempty"`
	Restart      string     `json:"restart_policy,omitempty"`
	SystemdUnit  string     `json:"systemd_unit,omitempty"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	LogMaxBytes  int64      `json:"log_max_bytes,omitempty"`
	LogDriver    string     `json:"log_driver,omitempty"`
	Security     []string   `json:"security_options,omitempty"`
}

// RunningJob is a job container of this collector.
type RunningJob struct {
	JobID       string `json:"job_id"`
	Integration string `json:"integration"`
	Container   string `json:"container"`
	State       string `json:"state"`
}

// GetStatus gathers the status. It fails only when there is no collector
// (ErrNotInstalled); what it could not learn is in the status.
func GetStatus(ctx context.Context, e *Env) (*Status, error) {
	s := &Status{CLIVersion: buildinfo.String(), Problems: []string{}}
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	s.Enrollment = &Enrollment{CollectorID: cfg.CollectorID, PlatformURL: stripUserinfo(cfg.PlatformURL), CAPin: cfg.CAPin,
		EnrolledAt: cfg.EnrolledAt, Supervisor: supervisor(cfg), SELinux: strings.Join(install.DaemonSpec(cfg).SELinuxOptions, ",")}
	s.DesiredImage = cfg.Image
	s.Engine = engineStatus(ctx, e)
	if !s.Engine.Reachable {
		s.problem("engine at %s unreachable: %s", s.Engine.Socket, s.Engine.Error)
	} else {
		s.Containers = roleContainers(ctx, e)
		s.Jobs = runningJobs(ctx, e, cfg.CollectorID)
	}
	s.Platform = platformStatus(ctx, e, cfg, s.Containers)
	if !s.Platform.Reachable {
		s.problem("platform %s unreachable: %s", s.Platform.URL, s.Platform.Error)
	}
	s.UpToDate = s.Engine.Reachable
	for _, c := range s.Containers {
		switch {
		case !c.Exists:
			s.problem("%s does not exist", c.Name)
		case !c.Running:
			s.problem("%s is %s, not running", c.Name, c.State)
		case c.Health == engine.HealthUnhealthy:
			s.problem("%s is unhealthy: %s", c.Name, c.HealthDetail)
		}
		if c.Image != cfg.Image {
			s.UpToDate = false
		}
	}
	return s, nil
}

func (s *Status) problem(format string, args ...any) {
	s.Problems = append(s.Problems, termsafe.String(fmt.Sprintf(format, args...)))
}

func supervisor(c *config.Config) string {
	if c.SystemdManaged() {
		return "systemd (Quadlet units)"
	}
	return "engine restart policy " + string(install.RestartPolicy(c.Engine.Kind))
}

func engineStatus(ctx context.Context, e *Env) EngineStatus {
	st := EngineStatus{Socket: e.EngineSocket}
	if e.Engine == nil {
		st.Error = errString(e.EngineErr)
		return st
	}
	cctx, cancel := engineCtx(ctx)
	defer cancel()
	info, err := e.Engine.Info(cctx)
	if err != nil {
		st.Error = errString(err)
		return st
	}
	st.Reachable = true
	st.Kind, st.Version, st.Runtime, st.Cgroups = string(info.Kind), info.Version, info.Runtime, info.CgroupVersion
	st.SELinux, st.LogDriver = info.SELinuxEnabled, info.LogDriver
	if info.Storage.Root != "" {
		su := &StorageUsage{Root: info.Storage.Root, TotalBytes: info.Storage.TotalBytes, UsedBytes: info.Storage.UsedBytes}
		if su.TotalBytes > 0 {
			su.FreeBytes = su.TotalBytes - su.UsedBytes
		}
		st.Storage = su
	}
	return st
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return termsafe.String(stripUserinfo(err.Error()))
}

// roleContainers inspects the daemon and runner, and runs their health
// checks (Podman runs them from systemd timers: a host without them, or
// a check that has not come round yet, would show stale results).
func roleContainers(ctx context.Context, e *Env) []RoleContainer {
	var out []RoleContainer
	for _, name := range e.roleNames() {
		rc := RoleContainer{Name: name}
		cctx, cancel := engineCtx(ctx)
		c, err := e.Engine.InspectContainer(cctx, name)
		cancel()
		if err != nil {
			out = append(out, rc)
			continue
		}
		rc.Exists, rc.State, rc.Running, rc.Image = true, c.State, c.Running, c.Image
		rc.ImageDigest, rc.Version, rc.Restart = digestOf(c.Image), c.Labels[install.LabelVersion], string(c.Restart)
		rc.SystemdUnit, rc.Health, rc.LogMaxBytes, rc.LogDriver = c.Labels[install.LabelSystemdUnit], c.Health, c.LogMaxBytes, c.LogDriver
		rc.Security = c.SecurityOptions
		if !c.StartedAt.IsZero() {
			t := c.StartedAt
			rc.StartedAt = &t
		}
		if c.Running && c.HasHealthCheck {
			hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if h, err := e.Engine.RunHealthCheck(hctx, name); err == nil {
				rc.Health, rc.HealthDetail = h.Status, termsafe.String(strings.TrimSpace(h.Output))
			}
			cancel()
		}
		out = append(out, rc)
	}
	return out
}

func runningJobs(ctx context.Context, e *Env, collectorID string) []RunningJob {
	cctx, cancel := engineCtx(ctx)
	defer cancel()
	list, err := e.Engine.ListContainers(cctx, map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelCollector: collectorID})
	if err != nil {
		return nil
	}
	out := []RunningJob{}
	for _, c := range list {
		out = append(out, RunningJob{JobID: termsafe.String(c.Labels[runner.LabelJob]), Integration: termsafe.String(c.Labels[runner.LabelIntegration]),
			Container: termsafe.String(c.Name), State: c.State})
	}
	return out
}

// ackAt finds the time in the daemon's health line "heartbeat
// acknowledged at T".
var ackAt = regexp.MustCompile(`acknowledged at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`)

func platformStatus(ctx context.Context, e *Env, cfg *config.Config, roles []RoleContainer) *PlatformStatus {
	ps := &PlatformStatus{URL: stripUserinfo(cfg.PlatformURL)}
	before := e.now()
	if date, err := probePlatform(ctx, e, cfg); err != nil {
		ps.Error = errString(err)
	} else {
		ps.Reachable = true
		ps.ClockOffsetMs = platformOffset(date, before, e.now()).Milliseconds()
	}
	for _, r := range roles {
		if r.Name == e.roleNames()[0] && r.HealthDetail != "" {
			ps.DaemonSays = r.HealthDetail
			if m := ackAt.FindStringSubmatch(r.HealthDetail); m != nil {
				if t, err := time.Parse(time.RFC3339, m[1]); err == nil {
					ps.LastHeartbeatAck = &t
				}
			}
		}
	}
	return ps
}

// platformOffset is the platform's clock minus this host's, from the Date
// of an answer to a request sent at before and answered at after: Date has
// whole seconds, so its middle against the middle of the call.
func platformOffset(date, before, after time.Time) time.Duration {
	local := before.Add(after.Sub(before) / 2)
	return date.Add(500 * time.Millisecond).Sub(local)
}

// probePlatform asks the platform's /healthz through the pinned CA and
// returns its answer's Date.
func probePlatform(ctx context.Context, e *Env, cfg *config.Config) (time.Time, error) {
	hc, err := e.pinnedClient(cfg)
	if err != nil {
		return time.Time{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.PlatformURL, "/")+"/healthz", nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("/healthz answered %s", resp.Status)
	}
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return time.Time{}, errors.New("the platform's answer has no Date header")
	}
	return d, nil
}

// WriteStatus writes the status for people.
func WriteStatus(w io.Writer, s *Status) {
	en := s.Enrollment
	fmt.Fprintf(w, "collector   %s, enrolled %s\n", en.CollectorID, en.EnrolledAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "platform    %s (CA %s)\n", termsafe.String(en.PlatformURL), en.CAPin)
	if p := s.Platform; p != nil {
		switch {
		case p.Reachable:
			fmt.Fprintf(w, "            reachable")
		default:
			fmt.Fprintf(w, "            UNREACHABLE: %s", p.Error)
		}
		if p.LastHeartbeatAck != nil {
			fmt.Fprintf(w, "; last heartbeat acknowledged %s ago", s.since(*p.LastHeartbeatAck))
		}
		if off := time.Duration(p.ClockOffsetMs) * time.Millisecond; p.Reachable && off.Abs() >= 2*time.Second {
			fmt.Fprintf(w, "; this host's clock is %s (the collector works in platform time)", units.ClockOffset(off))
		}
		fmt.Fprintln(w)
	}
	eng := s.Engine
	if eng.Reachable {
		fmt.Fprintf(w, "engine      %s %s at %s (runtime %s, cgroup v%s, SELinux %v)\n", eng.Kind, termsafe.String(eng.Version), eng.Socket,
			termsafe.String(eng.Runtime), eng.Cgroups, eng.SELinux)
		if st := eng.Storage; st != nil && st.TotalBytes > 0 {
			fmt.Fprintf(w, "storage     %s: %s free of %s (%d%% used)\n", termsafe.String(st.Root), gib(st.FreeBytes), gib(st.TotalBytes), st.UsedBytes*100/st.TotalBytes)
		}
	} else {
		fmt.Fprintf(w, "engine      UNREACHABLE at %s: %s\n", eng.Socket, eng.Error)
	}
	fmt.Fprintf(w, "supervisor  %s; SELinux label %s\n", en.Supervisor, en.SELinux)
	for _, c := range s.Containers {
		if !c.Exists {
			fmt.Fprintf(w, "%-16s MISSING\n", c.Name)
			continue
		}
		h := ""
		if c.Health != "" {
			h = " (" + c.Health + ")"
		}
		fmt.Fprintf(w, "%-16s %s%s, version %s, image %s\n", c.Name, c.State, h, termsafe.String(c.Version), termsafe.String(c.ImageDigest))
		if c.HealthDetail != "" {
			fmt.Fprintf(w, "%-16s %s\n", "", c.HealthDetail)
		}
	}
	fmt.Fprintf(w, "jobs        %d running\n", len(s.Jobs))
	for _, j := range s.Jobs {
		fmt.Fprintf(w, "            %s (integration %s): %s\n", j.JobID, j.Integration, j.State)
	}
	if s.DesiredImage != "" {
		state := "up to date"
		if !s.UpToDate {
			state = "NOT what the containers run (an upgrade is under way, or the installer must run again)"
		}
		fmt.Fprintf(w, "desired     %s: %s\n", termsafe.String(s.DesiredImage), state)
	}
	if len(s.Problems) == 0 {
		fmt.Fprintln(w, "status      OK")
		return
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "PROBLEM     %s\n", p)
	}
}

func (s *Status) since(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }
