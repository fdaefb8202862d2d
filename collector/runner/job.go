package runner

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/trust"
)

// logFlushEvery is how often a running job's logs go up.
const logFlushEvery = 2 * time.Second

// jobRun is one leased job on its way through the runner.
type jobRun struct {
	r    *Runner
	log  *slog.Logger
	logs *logSink
	job  *crypto.Job // set once the envelope is open

	leaseMu  sync.Mutex
	lease    *api.Lease    // the current lease: a handover replaces it
	newLease chan struct{} // closed, and replaced, at each handover
	// ended is closed once the run is abandoned (its lease lost, or the
	// runner stopping): it takes no handover then.
	ended <-chan struct{}

	statsMu sync.Mutex
	peakMem int64
	peakCPU float64

	// cleanPending: removing the job's container and secret failed (the
	// engine away as the job ended); retryCleanup removes them.
	cleanPending bool
	// channel is the job's records channel (a collection's; nil for a
	// validation, or without a state dir).
	channel *recordsChannel
}

// outcome is how a job ended, as Finish reports it.
type outcome struct {
	exitCode  int
	err       error
	records   *recordSink
	oomKilled bool
	// validation is a validation's result (nil for a collection, or when
	// the output could not be read).
	validation *integration.ValidationResult
}

// failed is the outcome of a job that ended before its container did.
func failed(err error) outcome { return outcome{exitCode: -1, err: err} }

// runLease runs one leased job and reports how it ended. The lease is kept
// until the job is reported; a lost lease abandons the run, which then
// reports nothing. The job's integration is held until what the job
// created is removed: when the engine was away as the job ended, that is
// once it answers again.
func (r *Runner) runLease(ctx context.Context, lease *api.Lease) {
	jobCtx, abandon := context.WithCancelCause(ctx)
	defer abandon(nil)
	j := &jobRun{r: r, lease: lease, newLease: make(chan struct{}), ended: jobCtx.Done(), log: r.log.With("job", lease.JobID)}
	j.logs = newLogSink(j, nil)
	opened := j.open() // before any goroutine reads j's job and log
	keepCtx, stopKeeping := context.WithCancel(ctx)
	var keeper sync.WaitGroup
	keeper.Go(func() { j.keepLease(keepCtx, abandon) })
	defer keeper.Wait()
	defer stopKeeping()
	defer r.release(j)

	out := failed(opened)
	if opened == nil {
		out = j.run(jobCtx)
		r.crash("ended")
	}
	j.report(ctx, jobCtx, out)
	abandon(nil) // reported or given back: a new lease of the job is a new run
	stopKeeping()
	j.retryCleanup(ctx)
}

// report finishes the job with out, unless the run was abandoned (its
// lease lost, the runner stopping) or gave the job back.
func (j *jobRun) report(ctx, jobCtx context.Context, out outcome) {
	switch {
	case errors.Is(context.Cause(jobCtx), errLeaseLost) || api.StatusOf(out.err) == http.StatusConflict:
		// Reporting under a lost lease would be refused, and must never
		// fail the run that holds the job now.
		j.log.Warn("job abandoned", "reason", errLeaseLost)
	case ctx.Err() != nil:
		j.log.Info("runner stopping: the job's lease will expire and it will run again")
	case errors.Is(out.err, errGivenBack):
		j.log.Warn("container engine unavailable before the job's container ran: job given back, its lease will expire and it will run again", "err", out.err)
	default:
		j.finish(ctx, out)
	}
}

// run does the opened job's steps in order; nothing runs unless each step
// before passed, and what the job created is removed whatever happened.
func (j *jobRun) run(ctx context.Context) outcome {
	if !j.r.claimWait(ctx, j) {
		return failed(fmt.Errorf("integration %s already has a job running on this collector: nothing ran", j.job.IntegrationID))
	}
	image, err := j.pull(ctx)
	if err != nil {
		return failed(err)
	}
	j.log.Info("image verified", "image", image)
	if err := j.r.state.setInflight(j.job.JobID); err != nil {
		return failed(fmt.Errorf("record job in flight: %w", err))
	}
	defer j.cleanup()
	return j.runContainer(ctx, image)
}

// pull verifies the job's image and pulls it, waiting for an engine that
// does not answer: that is no refusal of the image, which only the
// signature check gives.
func (j *jobRun) pull(ctx context.Context) (string, error) {
	var image string
	err := j.beforeStart(ctx, unavailable, func() (err error) {
		image, err = j.r.images.VerifyAndPull(ctx, j.job.Image)
		return err
	})
	var refusal *trust.RefusalError
	switch {
	case err == nil:
		return image, nil
	case errors.Is(err, errGivenBack):
		return "", err
	case errors.Is(err, trust.ErrRegistryUnreachable), errors.Is(err, trust.ErrImageNotFound):
		// Not a verdict on the image: it could not be looked at.
		return "", fmt.Errorf("image %s could not be fetched, nothing ran: %w", j.job.Image, err)
	case errors.As(err, &refusal):
		return "", fmt.Errorf("image %s refused, nothing ran: %w", j.job.Image, err)
	}
	return "", fmt.Errorf("image %s not pulled, nothing ran: %w", j.job.Image, err)
}

// open verifies and decrypts the envelope, refuses a replay, and sets the
// logs' redaction of the job's secrets.
func (j *jobRun) open() error {
	j.r.pinPlatformKeys(j.cur(), j.log)
	job, err := j.r.open(j.cur())
	if err != nil {
		return fmt.Errorf("envelope refused, nothing ran: %w", err)
	}
	j.job = job
	j.log = j.log.With("integration", job.IntegrationID)
	if j.r.state.isFinished(job.JobID) {
		return fmt.Errorf("job %s already ran on this collector: replay refused, nothing ran", job.JobID)
	}
	red, err := redactorFor(job, j.r.cfg.JobEgress)
	if err != nil {
		return err
	}
	j.logs.red = red
	return nil
}

// open verifies and decrypts a lease's envelope, with each platform key
// the collector accepts in turn while only the signature fails (a
// rotation of the platform's signing key), and each of the collector's
// HPKE keys in turn while only the decryption fails.
func (r *Runner) open(l *api.Lease) (*crypto.Job, error) {
	platformKeys := []ed25519.PublicKey{r.cfg.PlatformKey}
	if r.cfg.PlatformKeys != nil {
		platformKeys = r.cfg.PlatformKeys()
	}
	err := fmt.Errorf("open envelope: %w: no platform key", crypto.ErrInvalidKey)
	for _, pk := range platformKeys {
		var job *crypto.Job
		if job, err = r.openSignedBy(l, pk); !errors.Is(err, crypto.ErrEnvelopeSignature) {
			return job, err
		}
	}
	return nil, fmt.Errorf("%w (signed by none of the %d platform keys this collector accepts: the platform switched signing keys before this collector pinned the new one, or the old key's grace is over)",
		err, len(platformKeys))
}

func (r *Runner) openSignedBy(l *api.Lease, platformKey ed25519.PublicKey) (*crypto.Job, error) {
	keys := []*crypto.HPKEKey{r.cfg.HPKEKey}
	if r.cfg.HPKEKeys != nil {
		keys = r.cfg.HPKEKeys()
	}
	err := fmt.Errorf("open envelope: %w: no hpke key", crypto.ErrInvalidKey)
	for _, k := range keys {
		var job *crypto.Job
		if job, err = crypto.OpenEnvelope(l.Envelope, r.cfg.CollectorID, l.JobID, k, platformKey, r.cfg.Now()); !errors.Is(err, crypto.ErrEnvelopeDecrypt) {
			return job, err
		}
	}
	return nil, err
}

// runContainer creates, starts and watches the job container; a step the
// engine's absence failed is made again once it answers.
func (j *jobRun) runContainer(ctx context.Context, image string) outcome {
	away := func(err error) bool { return j.r.engineAway(ctx, err) }
	var spec *engine.ContainerSpec
	var releaseLabel func()
	err := j.beforeStart(ctx, away, func() (err error) {
		spec, releaseLabel, err = j.containerSpec(ctx, image)
		return err
	})
	if err != nil {
		return failed(err)
	}
	defer releaseLabel()
	var id string
	err = j.beforeStart(ctx, away, func() (err error) {
		id, err = j.startContainer(ctx, spec)
		return err
	})
	if err != nil {
		return failed(err)
	}
	if err := j.r.api.MarkRunning(ctx, j.job.JobID, j.cur().LeaseID); err != nil {
		j.log.Warn("mark running failed", "err", err)
	}
	return j.watch(ctx, id)
}

// watch follows the container to its exit within the job's timeout, its
// usage sampled and its logs flushed as it goes. Every goroutine it starts
// has returned when it does.
func (j *jobRun) watch(ctx context.Context, id string) outcome {
	runCtx, stopRun := context.WithTimeout(ctx, j.timeout())
	defer stopRun()
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { j.sampleStats(ctx, id, stop) })
	bg.Go(func() { j.logs.flushEvery(ctx, stop, logFlushEvery) })
	records, validation, e := j.follow(runCtx, stopRun, id)
	out := outcome{records: records, validation: validation}
	out.exitCode, out.err = j.judge(ctx, runCtx, id, e)
	out.err = withRefusals(out.err, records.refusedErr())
	close(stop)
	bg.Wait() // an upload under way completes; then the last one
	j.sampleOnce(ctx, id)
	if out.exitCode == 137 && out.err != nil {
		if out.oomKilled = j.oomKilled(ctx, id); out.oomKilled {
			out.err = fmt.Errorf("killed out of memory at its limit of %d MiB (exit 137): %w", JobResources(j.job.Limits).MemoryBytes>>20, out.err)
		}
	}
	j.logs.flush(ctx)
	return out
}

// oomKilled says whether a job that exited 137 was killed at its memory
// limit: the engine says so (dockerd does), or, where the engine does not
// report it (Podman 4.3 with runc), its sampled peak came within a tenth
// of the limit.
func (j *jobRun) oomKilled(ctx context.Context, id string) bool {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if c, err := j.r.eng.InspectContainer(cctx, id); err == nil && c.OOMKilled {
		return true
	}
	limit := JobResources(j.job.Limits).MemoryBytes
	j.statsMu.Lock()
	peak := j.peakMem
	j.statsMu.Unlock()
	return limit > 0 && peak >= limit-limit/10
}

// exit is what following a job container gave.
type exit struct {
	code                    int
	recErr, logErr, waitErr error
	// outage: the engine was away while the job ran; lost: that lost the
	// job (the engine away past its time limit, or back without its
	// container).
	outage bool
	lost   error
}

// follow streams the container's stdout into records (a validation's into
// its result) and its stderr into the logs until it exits, then takes its
// exit code, across engine outages. A records upload that fails for good
// ends runCtx: the job stops at once. Both pumps have returned when it
// does.
func (j *jobRun) follow(runCtx context.Context, stopRun context.CancelFunc, id string) (*recordSink, *integration.ValidationResult, exit) {
	records := &recordSink{j: j, stop: stopRun}
	var validation *integration.ValidationResult
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	var e exit
	var outErr, chErr error
	var pumps sync.WaitGroup
	pumps.Go(func() {
		if j.validating() {
			validation, outErr = integration.ReadValidation(outR)
		} else {
			outErr = records.consume(runCtx, outR, srcOutput)
		}
		if outErr != nil {
			stopRun()
		}
		outR.CloseWithError(outErr) // the engine's writes fail from now on
	})
	pumps.Go(func() { j.logs.consume(errR) })
	ch := j.channel
	if ch != nil {
		pumps.Go(func() {
			if chErr = ch.consume(runCtx, records); chErr != nil {
				stopRun()
			}
		})
		defer ch.close()
	}
	// A run that ends early (timed out, stopped) reads the channel no more.
	stopAbort := context.AfterFunc(runCtx, func() {
		if ch != nil {
			ch.abort()
		}
	})
	defer stopAbort()
	e.logErr = j.followLogs(runCtx, id, newStream("stdout", outW), newStream("stderr", errW), &e)
	outW.Close()
	errW.Close()
	if ch != nil {
		if e.logErr != nil || e.lost != nil {
			ch.abort() // the container may run on: judged below
		} else {
			ch.ended()
		}
	}
	pumps.Wait()
	e.recErr = cmp.Or(outErr, chErr)
	if !j.validating() {
		if e.recErr == nil {
			e.recErr = records.flushLast(runCtx)
		} else {
			records.drain()
		}
		j.log.Info("job output read", "records_channel", records.bySource[srcChannel], "records_stdout", records.bySource[srcOutput])
	}
	if e.lost == nil {
		e.code, e.waitErr = j.waitExit(runCtx, id, &e)
	}
	return records, validation, e
}

// validating says whether the job is a validation.
func (j *jobRun) validating() bool { return j.job != nil && j.job.Mode == crypto.ModeValidate }

// followLogs copies the container's output to out and errs until it
// exits; a follow an engine outage cut is made again once the engine
// answers, each byte delivered once (see stream).
func (j *jobRun) followLogs(runCtx context.Context, id string, out, errs *stream, e *exit) error {
	for {
		ro, re := out.follow(), errs.follow()
		err := j.r.eng.ContainerLogs(runCtx, id, true, ro, re)
		if err == nil {
			err = errors.Join(ro.complete(), re.complete())
		}
		if err == nil || !j.sitOut(runCtx, err, e) {
			return err
		}
	}
}

// waitExit takes the container's exit code, again after an outage.
func (j *jobRun) waitExit(runCtx context.Context, id string, e *exit) (int, error) {
	for {
		code, err := j.r.eng.WaitContainer(runCtx, id)
		if err == nil || !j.sitOut(runCtx, err, e) {
			return code, err
		}
	}
}

// judge turns how the container ended into the job's exit code and error,
// stopping a container that must not run on.
func (j *jobRun) judge(ctx, runCtx context.Context, id string, e exit) (int, error) {
	switch {
	case e.lost != nil && ctx.Err() == nil:
		j.stop(id) // the engine may answer by now
		return -1, e.lost
	case errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		j.stop(id)
		return -1, fmt.Errorf("job timed out after %v and was stopped", j.timeout())
	case e.recErr != nil && ctx.Err() == nil:
		j.stop(id) // the failure ended runCtx, not the container
		return -1, fmt.Errorf("stream records (the job was stopped): %w", e.recErr)
	case ctx.Err() != nil:
		j.stop(id)
		return -1, context.Cause(ctx)
	case e.waitErr != nil:
		return -1, fmt.Errorf("wait for job container: %w", e.waitErr)
	case e.logErr != nil:
		return e.code, fmt.Errorf("read job output: %w", e.logErr)
	case e.code != 0 && e.outage:
		return e.code, fmt.Errorf("integration exited with code %d after a container engine outage (an engine that stops its containers as it stops, as dockerd without live restore does, ends them so)", e.code)
	case e.code != 0:
		return e.code, fmt.Errorf("integration exited with code %d", e.code)
	}
	return 0, nil
}

// withRefusals adds the refused output lines to how a job ended: a run
// with any is no complete sync, even if it exited 0.
func withRefusals(err, refused error) error {
	switch {
	case refused == nil:
		return err
	case err == nil:
		return refused
	}
	return fmt.Errorf("%w; %w", err, refused)
}

// timeout is the job's time limit.
func (j *jobRun) timeout() time.Duration { return JobTimeout(j.job.Limits) }

// logf adds a collector line to the job's logs.
func (j *jobRun) logf(format string, args ...any) {
	j.logs.append("[collector] " + fmt.Sprintf(format, args...))
}

// finish reports the outcome, retrying until the platform answers, and
// records the job as finished here (a replay of it is refused).
func (j *jobRun) finish(ctx context.Context, out outcome) {
	req := j.finishRequest(ctx, out)
	err := j.retry(ctx, "finish", func(ctx context.Context, l *api.Lease) error {
		req.LeaseID = l.LeaseID
		return j.r.api.Finish(ctx, l.JobID, req)
	})
	if err != nil {
		j.log.Error("finishing the job failed", "err", err)
		return
	}
	j.r.crash("finished")
	if j.job != nil {
		if err := j.r.state.markFinished(j.job.JobID); err != nil {
			j.log.Warn("recording the finished job failed", "err", err)
		}
	}
	j.log.Info("job finished", "exit", out.exitCode, "error", req.Error, "records", req.Records, "refused", req.RefusedRecords, "peak_memory", req.PeakMemoryBytes)
}

// finishRequest builds the report of out; a failure's error, redacted,
// also ends the job's logs, which go up first.
func (j *jobRun) finishRequest(ctx context.Context, out outcome) api.FinishRequest {
	req := api.FinishRequest{ExitCode: out.exitCode, OOMKilled: out.oomKilled}
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
	if v := out.validation; v != nil {
		// The integration's words, redacted like its logs.
		req.Validation = &api.Validation{OK: v.OK, Reason: v.Reason, Error: j.logs.red.redact(v.Error)}
		for _, c := range v.Checks {
			req.Validation.Checks = append(req.Validation.Checks, api.ValidationCheck{Name: j.logs.red.redact(c.Name), Detail: j.logs.red.redact(c.Detail)})
		}
		if v.OK {
			j.logf("validation passed: %d check(s)", len(v.Checks))
		} else {
			j.logf("validation failed (%s): %s", v.Reason, req.Validation.Error)
		}
		j.logs.flush(ctx)
	}
	return req
}

// crash is the test crash at step (Config.CrashAt).
func (r *Runner) crash(step string) {
	if r.cfg.CrashAt != nil {
		r.cfg.CrashAt(step)
	}
}
