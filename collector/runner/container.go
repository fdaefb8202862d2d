package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/integration/manifest"
	"github.com/collectorhq/collector/internal/egressconf"
	"github.com/collectorhq/collector/internal/env"
)

// Job defaults where the envelope sets no limit.
const (
	defaultMemory  = 512 << 20
	defaultPids    = 512
	defaultTimeout = time.Hour
)

func secretName(jobID string) string       { return "collector-job-" + jobID }
func egressSecretName(jobID string) string { return "collector-job-" + jobID + "-egress" }
func containerName(jobID string) string    { return "collector-job-" + jobID }

// JobContainer is what a job container is made from. The runner fills it
// from a job's envelope; `collector run-local` from its flags and the
// image's manifest, so that both run an integration the same way.
type JobContainer struct {
	// Name names the container; SecretName the engine secret holding the
	// config, mounted at ConfigPath; EgressSecret, when set, the one
	// holding the collector's proxy, mounted at egressconf.JobPath.
	Name, SecretName, EgressSecret string
	// Image is the reference the container is created from (a digest
	// reference in production); ImageUser is its configured user, which
	// must be numeric: the secret is owned by it.
	Image, ImageUser string
	Labels           map[string]string
	// Env is the container's environment: never secrets (the config is
	// the secret), only the integration's mode (docs/integration-contract.md).
	Env map[string]string
	// Mounts are bind mounts (the records channel).
	Mounts []engine.Mount
	// Network is the network mode ("" = the engine's default).
	Network string
	// Limits are the job's limits; zero fields take the runner's defaults.
	Limits crypto.Limits
	// SELinuxOptions are the job's label options (a per-job MCS level).
	SELinuxOptions []string
}

// ContainerSpec is the least-privilege spec of a job container: every
// capability dropped, no new privileges, a read-only root filesystem,
// memory, CPU and pids limits (told to a Go runtime too: withRuntimeLimits),
// explicit ulimits, the config as a 0400 secret owned by the image's user,
// and no restart.
func ContainerSpec(c JobContainer) (*engine.ContainerSpec, error) {
	uid, gid, err := numericUser(c.ImageUser)
	if err != nil {
		return nil, fmt.Errorf("job image %s: %w", c.Image, err)
	}
	secrets := []engine.SecretMount{{Name: c.SecretName, Target: ConfigPath, Mode: 0o400, UID: uid, GID: gid}}
	if c.EgressSecret != "" {
		secrets = append(secrets, engine.SecretMount{Name: c.EgressSecret, Target: egressconf.JobPath, Mode: 0o400, UID: uid, GID: gid})
	}
	res := JobResources(c.Limits)
	return &engine.ContainerSpec{
		Name:            c.Name,
		Image:           c.Image,
		Env:             withRuntimeLimits(c.Env, res),
		Labels:          c.Labels,
		Secrets:         secrets,
		Mounts:          c.Mounts,
		Restart:         engine.RestartNo,
		Network:         c.Network,
		Resources:       res,
		Ulimits:         []engine.Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}, {Name: "nproc", Soft: 1024, Hard: 1024}},
		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		ReadOnlyRootfs:  true,
		SELinuxOptions:  c.SELinuxOptions,
	}, nil
}

// goMemLimitShare is the share of a job's memory limit its Go runtime is
// told to keep within (GOMEMLIMIT): the rest is for what the Go runtime
// does not count (the program's text, the kernel's buffers charged to the
// job).
const goMemLimitShare = 0.9

// withRuntimeLimits is the given environment with the job's limits told
// to a Go program (env.GoMaxProcs, env.GoMemLimit), where it does not set
// them already.
//
// Go sizes its scheduler from the CPU quota only where the container sees
// its own cgroup (not in a FROM-scratch image on a cgroup v1 host: it ran
// on every CPU of the host, and the LDAP integration took a fifth more
// CPU, its threads spinning for work between reads), and never reads the
// memory limit: without GOMEMLIMIT its heap grows to twice what is live
// before it collects, and a job near its limit is killed instead.
func withRuntimeLimits(given map[string]string, res engine.Resources) map[string]string {
	out := make(map[string]string, len(given)+2)
	if res.CPUs > 0 {
		out[env.GoMaxProcs] = strconv.Itoa(int(math.Ceil(res.CPUs)))
	}
	if res.MemoryBytes > 0 {
		out[env.GoMemLimit] = strconv.FormatInt(int64(float64(res.MemoryBytes)*goMemLimitShare), 10)
	}
	maps.Copy(out, given)
	return out
}

// containerSpec builds the spec of the job's container; the returned func
// releases its SELinux label.
func (j *jobRun) containerSpec(ctx context.Context, image string) (*engine.ContainerSpec, func(), error) {
	img, err := j.r.eng.InspectImage(ctx, image)
	if err != nil {
		return nil, nil, fmt.Errorf("inspect job image: %w", err)
	}
	if _, _, err := numericUser(img.User); err != nil {
		return nil, nil, fmt.Errorf("job image %s: %w", image, err)
	}
	m := j.imageManifest(img)
	if lim := ManifestLimits(j.job.Limits, m, j.validating()); lim != j.job.Limits {
		j.log.Info("job limits narrowed to what the image's manifest asks", "memory_bytes", lim.MemoryBytes, "cpus", lim.CPUs, "pids", lim.Pids, "timeout_sec", lim.TimeoutSec)
		j.job.Limits = lim
	}
	label, err := j.r.labels.ForJob()
	if err != nil {
		return nil, nil, err
	}
	var env map[string]string
	var mounts []engine.Mount
	if j.validating() {
		env = map[string]string{integration.ModeEnv: integration.ModeValidate}
	} else if j.r.cfg.StateDir != "" {
		uid, gid, _ := numericUser(img.User) // checked above
		if j.channel != nil {
			j.channel.close() // an earlier try's, cut by an engine outage
		}
		var m engine.Mount
		if j.channel, m, env, err = j.r.newChannel(j.job.JobID, uid, gid); err != nil {
			label.Release()
			return nil, nil, err
		}
		mounts = append(mounts, m)
	}
	spec, err := ContainerSpec(JobContainer{
		Name: containerName(j.job.JobID), SecretName: secretName(j.job.JobID), EgressSecret: j.egressSecret(m),
		Image: image, ImageUser: img.User, Labels: j.labels(), Env: env, Mounts: mounts,
		Network: j.network(m), Limits: j.job.Limits, SELinuxOptions: label.Options,
	})
	if err != nil {
		label.Release()
		return nil, nil, err
	}
	return spec, label.Release, nil
}

// imageManifest is the manifest label of the job's image: the image the
// runner verified and runs by digest, so what it asks is the signer's
// word for this very image (the platform's look at a tag, when the
// integration was saved, may be of another). nil when the image has none,
// or one the runner cannot read (logged: it then asks for nothing).
func (j *jobRun) imageManifest(img *engine.Image) *manifest.Manifest {
	doc, ok := img.Labels[manifest.Label]
	if !ok {
		return nil
	}
	m, err := manifest.Parse([]byte(doc))
	if err != nil {
		j.log.Warn("the job image's manifest label is not valid: it asks for nothing (no proxy, the envelope's limits)", "err", err)
		return nil
	}
	return m
}

// ManifestLimits narrows a job's limits, the platform's ceiling from the
// envelope (the runner's defaults where it sets none), to what the image's
// manifest asks for one run: each resource it names, at most the ceiling;
// a validation's time limit is its validation.timeout (by default
// manifest.DefaultValidationTimeout, as without a manifest), at most the
// ceiling; nothing else changes without a manifest. A manifest never
// raises a limit: the platform's job limits are what it plans each
// collector's capacity with.
func ManifestLimits(lim crypto.Limits, m *manifest.Manifest, validating bool) crypto.Limits {
	if m == nil {
		if validating {
			lim.TimeoutSec = int64(min(manifest.DefaultValidationTimeout, JobTimeout(lim)) / time.Second)
		}
		return lim
	}
	r, res := m.Resources, JobResources(lim)
	if r.MemoryBytes > 0 {
		lim.MemoryBytes = min(r.MemoryBytes, res.MemoryBytes)
	}
	if r.CPUs > 0 {
		lim.CPUs = r.CPUs
		if res.CPUs > 0 {
			lim.CPUs = min(r.CPUs, res.CPUs)
		}
	}
	if r.Pids > 0 {
		lim.Pids = min(r.Pids, res.Pids)
	}
	want := r.Timeout
	if validating {
		want = cmp.Or(m.Validation.Timeout, manifest.DefaultValidationTimeout)
	}
	if want > 0 {
		lim.TimeoutSec = int64(max(min(want, JobTimeout(lim))/time.Second, 1))
	}
	return lim
}

// egressSecret names the secret of the collector's proxy when the job
// gets it: its image's manifest asks (network.proxy) and the collector
// has one; "" otherwise.
func (j *jobRun) egressSecret(m *manifest.Manifest) string {
	if m == nil || !m.Network.Proxy {
		return ""
	}
	if j.r.cfg.JobEgress == nil {
		j.log.Info("the integration asks for the collector's proxy, and the collector has none: the job connects directly")
		return ""
	}
	return egressSecretName(j.job.JobID)
}

// labels name the job container's role, job, integration and collector.
func (j *jobRun) labels() map[string]string {
	return map[string]string{
		LabelRole: RoleJob, LabelJob: j.job.JobID,
		LabelIntegration: j.job.IntegrationID, LabelCollector: j.r.cfg.CollectorID,
	}
}

// JobResources are a job's limits, with the runner's defaults where it
// sets none.
func JobResources(lim crypto.Limits) engine.Resources {
	res := engine.Resources{MemoryBytes: lim.MemoryBytes, CPUs: lim.CPUs, Pids: lim.Pids}
	if res.MemoryBytes <= 0 {
		res.MemoryBytes = defaultMemory
	}
	if res.Pids <= 0 {
		res.Pids = defaultPids
	}
	return res
}

// JobTimeout is a job's time limit, the runner's default where it sets none.
func JobTimeout(lim crypto.Limits) time.Duration {
	if t := time.Duration(lim.TimeoutSec) * time.Second; t > 0 {
		return t
	}
	return defaultTimeout
}

// network is the job's network (the integration's, when it names one),
// else none for an image whose manifest says it reaches nothing
// (network.access: none), else the runner's default.
func (j *jobRun) network(m *manifest.Manifest) string {
	switch {
	case j.job.Network != "":
		return j.job.Network
	case m != nil && m.Network.Access == manifest.NetworkNone:
		return "none"
	}
	return j.r.cfg.DefaultNetwork
}

// numericUser parses an image's "uid[:gid]" user; the secret must be owned
// by it, and a name cannot be resolved without the image's /etc/passwd.
func numericUser(u string) (int, int, error) {
	if u == "" {
		return 0, 0, nil
	}
	name, group, hasGroup := strings.Cut(u, ":")
	uid, err := strconv.Atoi(name)
	if err != nil || uid < 0 {
		return 0, 0, fmt.Errorf("image user %q: want a numeric uid[:gid]", u)
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.Atoi(group); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("image user %q: want a numeric uid[:gid]", u)
		}
	}
	return uid, gid, nil
}

// startContainer hands the config over as a secret, then creates and
// starts the container.
func (j *jobRun) startContainer(ctx context.Context, spec *engine.ContainerSpec) (string, error) {
	if err := j.createSecret(ctx, secretName(j.job.JobID), j.job.Config); err != nil {
		return "", err
	}
	for _, s := range spec.Secrets {
		if s.Target != egressconf.JobPath {
			continue
		}
		doc, err := json.Marshal(j.r.cfg.JobEgress)
		if err != nil {
			return "", err
		}
		if err := j.createSecret(ctx, s.Name, doc); err != nil {
			return "", err
		}
	}
	id, err := j.r.eng.CreateContainer(ctx, spec)
	if errors.Is(err, engine.ErrConflict) {
		if err = j.removeStale(ctx, spec.Name, err); err == nil {
			id, err = j.r.eng.CreateContainer(ctx, spec)
		}
	}
	if err != nil {
		return "", fmt.Errorf("create job container: %w", err)
	}
	if err := j.r.eng.StartContainer(ctx, id); err != nil {
		return "", fmt.Errorf("start job container: %w", err)
	}
	j.log.Info("job container started", "container", spec.Name)
	return id, nil
}

// removeStale removes a container of this job that this collector left
// (a try an engine outage cut, or an earlier run whose removal failed):
// nothing of it was read. A container of the name that is not this
// collector's job is left alone, and the conflict stands.
func (j *jobRun) removeStale(ctx context.Context, name string, conflict error) error {
	list, err := j.r.eng.ListContainers(ctx, map[string]string{LabelJob: j.job.JobID, LabelCollector: j.r.cfg.CollectorID})
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return conflict
	}
	j.log.Warn("removing a container this job left earlier", "container", name)
	return j.r.eng.RemoveContainer(ctx, name, true)
}

// createSecret hands a secret of the job (its config, its proxy) to the
// engine; a secret left by an earlier run of this job is replaced.
func (j *jobRun) createSecret(ctx context.Context, name string, data []byte) error {
	err := j.r.eng.CreateSecret(ctx, name, data)
	if errors.Is(err, engine.ErrConflict) {
		if err = j.r.eng.RemoveSecret(ctx, name); err == nil {
			err = j.r.eng.CreateSecret(ctx, name, data)
		}
	}
	if err != nil {
		return fmt.Errorf("create job secret: %w", err)
	}
	return nil
}

// stop stops the job container with the configured grace.
func (j *jobRun) stop(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), j.r.cfg.StopTimeout+30*time.Second)
	defer cancel()
	if err := j.r.eng.StopContainer(ctx, id, j.r.cfg.StopTimeout); err != nil && !errors.Is(err, engine.ErrNotFound) {
		j.log.Warn("stop job container failed", "err", err)
	}
}

// cleanup removes the container and the secret, whatever happened. What
// the engine did not remove (it was away) stays recorded in flight and
// pending: retryCleanup removes it once the engine answers, or the next
// start of the runner does.
func (j *jobRun) cleanup() {
	if j.channel != nil {
		j.channel.close() // a container that never started never ended it
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := j.r.removeJobObjects(ctx, j.job.JobID); err != nil {
		j.cleanPending = true
		j.log.Warn("removing the job container and secret failed: retrying once the container engine answers", "err", err)
		return
	}
	j.r.state.clearInflight(j.job.JobID)
}

// removeJobObjects removes a job's container and secret if they exist.
func (r *Runner) removeJobObjects(ctx context.Context, jobID string) error {
	var errs []error
	if err := r.eng.RemoveContainer(ctx, containerName(jobID), true); err != nil && !errors.Is(err, engine.ErrNotFound) {
		errs = append(errs, fmt.Errorf("remove job container: %w", err))
	}
	for _, name := range []string{secretName(jobID), egressSecretName(jobID)} {
		if err := r.eng.RemoveSecret(ctx, name); err != nil && !errors.Is(err, engine.ErrNotFound) {
			errs = append(errs, fmt.Errorf("remove job secret: %w", err))
		}
	}
	if err := r.removeChannel(jobID); err != nil {
		errs = append(errs, fmt.Errorf("remove records channel: %w", err))
	}
	return errors.Join(errs...)
}

// CleanLeftovers removes the job containers and secrets an earlier runner
// left behind (a crash, a kill -9, an engine away when a job ended);
// their leases expire on the platform, which runs the jobs again. The
// jobs this runner is running are left alone. A leftover it could not
// remove stays recorded and fails the sweep, which the runner makes again
// before its next job.
func (r *Runner) CleanLeftovers(ctx context.Context) error {
	list, err := r.eng.ListContainers(ctx, map[string]string{LabelRole: RoleJob, LabelCollector: r.cfg.CollectorID})
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, c := range list {
		ids[c.Labels[LabelJob]] = true
	}
	for _, id := range r.state.inflight() {
		ids[id] = true
	}
	if r.cfg.StateDir != "" {
		entries, _ := os.ReadDir(channelsDir(r.cfg.StateDir))
		for _, e := range entries {
			ids[e.Name()] = true // a channel made before its job was recorded in flight
		}
	}
	delete(ids, "")
	var errs []error
	for id := range ids {
		if r.runningJob(id) != nil {
			continue // checked after the list: a job records itself in flight once it runs
		}
		r.log.Info("removing leftovers of an earlier run", "job", id)
		if err := r.removeJobObjects(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", id, err))
			continue
		}
		r.state.clearInflight(id)
	}
	return errors.Join(errs...)
}
