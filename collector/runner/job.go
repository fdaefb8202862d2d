package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
)

// Job defaults where the envelope sets no limit.
const (
	defaultMemory  = 512 << 20
	defaultPids    = 512
	defaultTimeout = time.Hour
)

// errLeaseLost ends a job whose lease the platform no longer honours.
var errLeaseLost = errors.New("lease lost: the platform gave the job to another run")

// jobRun is one leased job on its way through the runner.
type jobRun struct {
	r   *Runner
	job *crypto.Job
	ctx context.Context // ends when the run is abandoned or the runner stops

	leaseMu sync.Mutex
	lease   *api.Lease // the current lease: a handover replaces it
	log     *slog.Logger
	logs    *logSink

	peakMem int64
	peakCPU float64
	statsMu sync.Mutex
}

// outcome is how a job ended, as Finish reports it.
type outcome struct {
	exitCode int
	err      error
	records  *recordSink
}

func secretName(jobID string) string    { return "collector-job-" + jobID }
func containerName(jobID string) string { return "collector-job-" + jobID }

// runLease runs one leased job and reports how it ended.
func (r *Runner) runLease(ctx context.Context, lease *api.Lease) {
	j := &jobRun{r: r, lease: lease, log: r.log.With("job", lease.JobID)}
	j.logs = newLogSink(j, nil)
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	j.ctx = jobCtx
	go j.keepLease(jobCtx, cancel)

	out := j.run(jobCtx)
	if errors.Is(context.Cause(jobCtx), errLeaseLost) || api.StatusOf(out.err) == http.StatusConflict {
		// The platform gave the job to another lease: reporting under this
		// one would be refused, and must never fail the new run.
		j.log.Warn("job abandoned", "reason", errLeaseLost)
		return
	}
	if ctx.Err() != nil {
		j.log.Info("runner stopping: the job's lease will expire and it will run again")
		return
	}
	j.finish(ctx, out)
}

// run does the job's steps in order; nothing runs unless each step before passed.
func (j *jobRun) run(ctx context.Context) outcome {
	lease := j.cur()
	job, err := j.r.open(lease)
	if err != nil {
		return outcome{exitCode: -1, err: fmt.Errorf("envelope refused, nothing ran: %w", err)}
	}
	j.job = job
	j.log = j.log.With("integration", job.IntegrationID)
	if j.r.state.isFinished(job.JobID) {
		return outcome{exitCode: -1, err: fmt.Errorf("job %s already ran on this collector: replay refused, nothing ran", job.JobID)}
	}
	if !j.r.claimWait(ctx, j) {
		return outcome{exitCode: -1, err: fmt.Errorf("integration %s already has a job running on this collector: nothing ran", job.IntegrationID)}
	}
	defer j.r.release(job.JobID)
	red, err := redactorFor(job)
	if err != nil {
		return outcome{exitCode: -1, err: err}
	}
	j.logs = newLogSink(j, red)

	image, err := j.r.images.VerifyAndPull(ctx, job.Image)
	if err != nil {
		return outcome{exitCode: -1, err: fmt.Errorf("image %s refused, nothing ran: %w", job.Image, err)}
	}
	j.log.Info("image verified", "image", image)
	if err := j.r.state.setInflight(job.JobID); err != nil {
		return outcome{exitCode: -1, err: fmt.Errorf("record job in flight: %w", err)}
	}
	defer j.cleanup()
	return j.runContainer(ctx, image)
}

// runContainer creates, starts and watches the job container.
func (j *jobRun) runContainer(ctx context.Context, image string) outcome {
	spec, release, err := j.containerSpec(ctx, image)
	if err != nil {
		return outcome{exitCode: -1, err: err}
	}
	defer release()
	if err := j.createSecret(ctx); err != nil {
		return outcome{exitCode: -1, err: err}
	}
	id, err := j.r.eng.CreateContainer(ctx, spec)
	if err != nil {
		return outcome{exitCode: -1, err: fmt.Errorf("create job container: %w", err)}
	}
	if err := j.r.eng.StartContainer(ctx, id); err != nil {
		return outcome{exitCode: -1, err: fmt.Errorf("start job container: %w", err)}
	}
	j.log.Info("job container started", "container", spec.Name)
	if err := j.r.api.MarkRunning(ctx, j.job.JobID, j.cur().LeaseID); err != nil {
		j.log.Warn("mark running failed", "err", err)
	}
	return j.watch(ctx, id)
}

// watch streams the container's output while it runs, enforces the job's
// timeout, samples its usage and returns how it ended.
func (j *jobRun) watch(ctx context.Context, id string) outcome {
	timeout := time.Duration(j.job.Limits.TimeoutSec) * time.Second
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	runCtx, cancelRun := context.WithTimeout(ctx, timeout)
	defer cancelRun()
	statsCtx, stopStats := context.WithCancel(ctx)
	go j.sampleStats(statsCtx, id)
	stopFlush := make(chan struct{})
	flushDone := make(chan struct{})
	go func() { j.logs.flushEvery(ctx, stopFlush, 2*time.Second); close(flushDone) }()

	records := &recordSink{j: j}
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	var wg sync.WaitGroup
	var recErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		recErr = records.consume(runCtx, outR)
		if recErr != nil {
			cancelRun() // the records cannot go up: stop the job now
		}
		outR.CloseWithError(recErr)
		io.Copy(io.Discard, outR)
	}()
	go func() { defer wg.Done(); j.logs.consume(errR) }()
	// The follow returns once the container exited with all its output.
	logErr := j.r.eng.ContainerLogs(runCtx, id, true, outW, errW)
	outW.Close()
	errW.Close()
	wg.Wait()
	code, waitErr := j.r.eng.WaitContainer(runCtx, id)

	var err error
	switch {
	case recErr != nil && ctx.Err() == nil:
		j.stop(id)
		code, err = -1, fmt.Errorf("stream records (the job was stopped): %w", recErr)
	case runCtx.Err() != nil && ctx.Err() == nil:
		j.stop(id)
		code, err = -1, fmt.Errorf("job timed out after %v and was stopped", timeout)
	case ctx.Err() != nil:
		j.stop(id)
		code, err = -1, context.Cause(ctx)
	case waitErr != nil:
		code, err = -1, fmt.Errorf("wait for job container: %w", waitErr)
	case logErr != nil:
		err = fmt.Errorf("read job output: %w", logErr)
	case code != 0:
		err = fmt.Errorf("integration exited with code %d", code)
	}
	switch rerr := records.refusedErr(); {
	case rerr != nil && err != nil:
		err = fmt.Errorf("%w; %w", err, rerr)
	case rerr != nil:
		err = rerr // the exit code stays as the container gave it
	}
	stopStats()
	j.sampleOnce(ctx, id)
	close(stopFlush)
	<-flushDone // an upload in progress completes; then the last one
	j.logs.flush(ctx)
	return outcome{exitCode: code, err: err, records: records}
}

// stop stops the job container with the configured grace.
func (j *jobRun) stop(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), j.r.cfg.StopTimeout+30*time.Second)
	defer cancel()
	if err := j.r.eng.StopContainer(ctx, id, j.r.cfg.StopTimeout); err != nil && !errors.Is(err, engine.ErrNotFound) {
		j.log.Warn("stop job container failed", "err", err)
	}
}

// containerSpec builds the least-privilege spec of the job container.
func (j *jobRun) containerSpec(ctx context.Context, image string) (*engine.ContainerSpec, func(), error) {
	img, err := j.r.eng.InspectImage(ctx, image)
	if err != nil {
		return nil, nil, fmt.Errorf("inspect job image: %w", err)
	}
	uid, gid, err := numericUser(img.User)
	if err != nil {
		return nil, nil, fmt.Errorf("job image %s: %w", image, err)
	}
	label, err := j.r.labels.ForJob()
	if err != nil {
		return nil, nil, err
	}
	lim := j.job.Limits
	res := engine.Resources{MemoryBytes: lim.MemoryBytes, CPUs: lim.CPUs, Pids: lim.Pids}
	if res.MemoryBytes <= 0 {
		res.MemoryBytes = defaultMemory
	}
	if res.Pids <= 0 {
		res.Pids = defaultPids
	}
	network := j.job.Network
	if network == "" {
		network = j.r.cfg.DefaultNetwork
	}
	spec := &engine.ContainerSpec{
		Name:  containerName(j.job.JobID),
		Image: image,
		Labels: map[string]string{
			LabelRole: RoleJob, LabelJob: j.job.JobID,
			LabelIntegration: j.job.IntegrationID, LabelCollector: j.r.cfg.CollectorID,
		},
		Secrets:         []engine.SecretMount{{Name: secretName(j.job.JobID), Target: ConfigPath, Mode: 0o400, UID: uid, GID: gid}},
		Restart:         engine.RestartNo,
		Network:         network,
		Resources:       res,
		Ulimits:         []engine.Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}, {Name: "nproc", Soft: 1024, Hard: 1024}},
		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		ReadOnlyRootfs:  true,
		SELinuxOptions:  label.Options,
	}
	return spec, label.Release, nil
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

// createSecret hands the config to the engine; a secret left by an earlier
// run of this job is replaced.
func (j *jobRun) createSecret(ctx context.Context) error {
	name := secretName(j.job.JobID)
	err := j.r.eng.CreateSecret(ctx, name, j.job.Config)
	if errors.Is(err, engine.ErrConflict) {
		if err = j.r.eng.RemoveSecret(ctx, name); err == nil {
			err = j.r.eng.CreateSecret(ctx, name, j.job.Config)
		}
	}
	if err != nil {
		return fmt.Errorf("create job secret: %w", err)
	}
	return nil
}

// cleanup removes the container and the secret, whatever happened.
func (j *jobRun) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j.r.removeJobObjects(ctx, j.job.JobID)
	j.r.state.clearInflight(j.job.JobID)
}

// removeJobObjects removes a job's container and secret if they exist.
func (r *Runner) removeJobObjects(ctx context.Context, jobID string) {
	if err := r.eng.RemoveContainer(ctx, containerName(jobID), true); err != nil && !errors.Is(err, engine.ErrNotFound) {
		r.log.Warn("remove job container failed", "job", jobID, "err", err)
	}
	if err := r.eng.RemoveSecret(ctx, secretName(jobID)); err != nil && !errors.Is(err, engine.ErrNotFound) {
		r.log.Warn("remove job secret failed", "job", jobID, "err", err)
	}
}

// CleanLeftovers removes the job containers and secrets an earlier runner
// left behind (a crash, a kill -9); their leases expire on the platform,
// which runs the jobs again.
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
	for id := range ids {
		if id == "" {
			continue
		}
		r.log.Info("removing leftovers of an earlier run", "job", id)
		r.removeJobObjects(ctx, id)
		r.state.clearInflight(id)
	}
	return nil
}

// claimWait claims the job's integration, waiting for a run of it that is
// on its way out (cancelled, or its lease lost) to release it; false if it
// stays busy. A job refused here would fail for good, so it waits instead.
func (r *Runner) claimWait(ctx context.Context, j *jobRun) bool {
	deadline := time.Now().Add(r.cfg.StopTimeout + time.Minute)
	for !r.claim(j) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return true
}

// claim marks the job's integration busy; false if it already is.
func (r *Runner) claim(j *jobRun) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, other := range r.running {
		if other.job.IntegrationID == j.job.IntegrationID {
			return false
		}
	}
	r.running[j.job.JobID] = j
	return true
}

// handoverWait bounds how long a call refused for a lost lease waits for
// the platform's new lease of the job to reach this run (the runner's next
// long poll brings it).
const handoverWait = 30 * time.Second

// awaitHandover waits for a lease newer than l; false if none came (or the
// run was abandoned meanwhile).
func (j *jobRun) awaitHandover(ctx context.Context, l *api.Lease) bool {
	deadline := time.Now().Add(handoverWait)
	for j.cur() == l {
		if time.Now().After(deadline) || ctx.Err() != nil || (j.ctx != nil && j.ctx.Err() != nil) {
			return false
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return true
}

// headroom is what the job may still take: its memory limit less the peak
// seen so far (which the host's free memory already reflects).
func (j *jobRun) headroom() int64 {
	limit := j.job.Limits.MemoryBytes
	if limit <= 0 {
		limit = defaultMemory
	}
	j.statsMu.Lock()
	defer j.statsMu.Unlock()
	return max(limit-j.peakMem, 0)
}

// cur returns the job's current lease.
func (j *jobRun) cur() *api.Lease {
	j.leaseMu.Lock()
	defer j.leaseMu.Unlock()
	return j.lease
}

// open verifies and decrypts a lease's envelope.
func (r *Runner) open(l *api.Lease) (*crypto.Job, error) {
	return crypto.OpenEnvelope(l.Envelope, r.cfg.CollectorID, l.JobID, r.cfg.HPKEKey, r.cfg.PlatformKey, r.cfg.Now())
}

// handover gives a new lease of a job this runner is still running to that
// run: the platform re-leased it after the old lease expired (an outage
// longer than the lease), and the run goes on under the new lease instead
// of being refused or started twice. It reports whether it took the lease.
func (r *Runner) handover(l *api.Lease) bool {
	r.mu.Lock()
	j, ok := r.running[l.JobID]
	r.mu.Unlock()
	if !ok || j.ctx.Err() != nil {
		// An abandoned run is on its way out: the new lease starts a fresh
		// run, which waits for this one to release the integration.
		return false
	}
	if _, err := r.open(l); err != nil {
		return false
	}
	j.leaseMu.Lock()
	j.lease = l
	j.leaseMu.Unlock()
	j.log.Warn("lease expired while the job ran; continuing under the new lease", "attempt", l.Attempt)
	return true
}

func (r *Runner) release(jobID string) {
	r.mu.Lock()
	delete(r.running, jobID)
	r.mu.Unlock()
}

// keepLease renews the lease at a third of its TTL until ctx ends; a lost
// lease cancels the job.
func (j *jobRun) keepLease(ctx context.Context, cancel context.CancelCauseFunc) {
	ttl := time.Duration(j.cur().LeaseTTLSec) * time.Second
	if ttl <= 0 {
		ttl = 60 * time.Second
	}
	t := time.NewTicker(max(ttl/3, 200*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l := j.cur()
		_, err := j.r.api.Renew(ctx, l.JobID, l.LeaseID)
		if (api.StatusOf(err) == 409 || api.StatusOf(err) == 404) && j.cur() == l {
			cancel(errLeaseLost)
			return
		}
		if err != nil && ctx.Err() == nil {
			j.log.Warn("lease renewal failed; retrying", "err", err)
		}
	}
}

// sampleStats records peak memory and CPU until ctx ends.
func (j *jobRun) sampleStats(ctx context.Context, id string) {
	t := time.NewTicker(j.r.cfg.StatsInterval)
	defer t.Stop()
	for {
		j.sampleOnce(ctx, id)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (j *jobRun) sampleOnce(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := j.r.eng.ContainerStats(ctx, id)
	if err != nil {
		return
	}
	j.statsMu.Lock()
	j.peakMem = max(j.peakMem, int64(st.MemoryBytes))
	j.peakCPU = max(j.peakCPU, st.CPUPercent)
	j.statsMu.Unlock()
}

// logf adds a collector line to the job's logs.
func (j *jobRun) logf(format string, args ...any) {
	j.logs.append("[collector] " + fmt.Sprintf(format, args...))
}

// finish reports the outcome, retrying until the platform answers.
func (j *jobRun) finish(ctx context.Context, out outcome) {
	req := api.FinishRequest{ExitCode: out.exitCode}
	if out.err != nil {
		req.Error = j.logs.red.redact(out.err.Error())
		j.logf("job failed: %v", out.err)
		j.logs.flush(ctx)
	}
	j.statsMu.Lock()
	req.PeakMemoryBytes, req.PeakCPUPercent = j.peakMem, j.peakCPU
	j.statsMu.Unlock()
	if rs := out.records; rs != nil {
		req.Batches, req.Records, req.RefusedRecords = rs.seq, rs.sent, rs.refused
	}
	err := j.retry(ctx, "finish", func(ctx context.Context, l *api.Lease) error {
		req.LeaseID = l.LeaseID
		return j.r.api.Finish(ctx, l.JobID, req)
	})
	if err != nil {
		j.log.Error("finishing the job failed", "err", err)
		return
	}
	if j.job != nil {
		if err := j.r.state.markFinished(j.job.JobID); err != nil {
			j.log.Warn("recording the finished job failed", "err", err)
		}
	}
	j.log.Info("job finished", "exit", out.exitCode, "error", req.Error, "records", req.Records, "refused", req.RefusedRecords, "peak_memory", req.PeakMemoryBytes)
}

// retry calls f with the current lease until it succeeds, fails for good,
// or ctx ends. What api.Retryable says may pass if made again (a timeout, a
// broken connection, 408, 429, 5xx) is retried with backoff, with the same
// body: every call is idempotent. A lost lease (409) is retried only if a
// handover brought a new one.
func (j *jobRun) retry(ctx context.Context, what string, f func(context.Context, *api.Lease) error) error {
	backoff := j.r.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		l := j.cur()
		err := f(ctx, l)
		if api.StatusOf(err) == 409 && j.awaitHandover(ctx, l) {
			continue
		}
		if err == nil || !api.Retryable(err) || ctx.Err() != nil {
			return err
		}
		j.log.Warn(what+" failed; retrying", "attempt", attempt, "err", err, "retry_in", backoff)
		sleep(ctx, backoff)
		backoff = min(backoff*2, 15*time.Second)
	}
}
