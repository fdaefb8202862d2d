package ops

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/collector/joblogs"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/termsafe"
)

// LogsOptions select what `collector logs` shows.
type LogsOptions struct {
	// Target is "daemon", "runner", or a job ID.
	Target string
	Follow bool
	Since  time.Time
	Tail   int
	// Poll is how often a followed job log is read again.
	Poll time.Duration
}

// ErrNoSuchLogs: the target names no container and no kept job log.
var ErrNoSuchLogs = errors.New("no such logs")

// Logs writes the target's logs to w, redacted and made safe for a
// terminal: the daemon's or runner's container logs from the engine, or
// a job's logs as the runner kept them on the host (already redacted of
// the job's secrets). A followed job log ends when the job does.
func Logs(ctx context.Context, e *Env, o LogsOptions, w io.Writer) error {
	red := NewRedactor(e.Dir)
	lw := &lineWriter{w: w, r: red, esc: termsafe.Text}
	defer lw.Flush()
	names := e.roleNames()
	switch o.Target {
	case "daemon", "runner", install.DaemonName, install.RunnerName, names[0], names[1]:
		name := names[0]
		if strings.HasSuffix(o.Target, "runner") {
			name = names[1]
		}
		if e.Engine == nil {
			return fmt.Errorf("%w: %v", ErrEngine, e.EngineErr)
		}
		err := e.Engine.ReadLogs(ctx, name, engine.LogOptions{Follow: o.Follow, Since: o.Since, Tail: o.Tail, Timestamps: true}, lw, lw)
		if errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("%w: container %s does not exist (is the collector installed? `collector status`)", ErrNoSuchLogs, name)
		}
		return err
	}
	return jobLogs(ctx, e, o, lw)
}

func (e *Env) stateDir() string {
	if c, err := e.loadConfig(); err == nil && c.StateDir != "" {
		return c.StateDir
	}
	if e.StateDir != "" {
		return e.StateDir
	}
	return config.DefaultStateDir
}

// jobLogs shows a job's kept log; following it waits for the file (the
// runner writes it at its first upload) and reads on until the job ends.
func jobLogs(ctx context.Context, e *Env, o LogsOptions, w io.Writer) error {
	p, err := joblogs.Path(e.stateDir(), o.Target)
	if err != nil {
		return fmt.Errorf("%w: %q is neither daemon, runner nor a job ID", ErrNoSuchLogs, o.Target)
	}
	poll := o.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	var f *os.File
	for {
		f, err = os.Open(p)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if !o.Follow || !jobRunning(ctx, e, o.Target) {
			return fmt.Errorf("%w: no log kept for job %s on this host (the newest %d jobs' logs are kept; the platform has every job's: platform jobs logs %s)",
				ErrNoSuchLogs, o.Target, joblogs.Keep, o.Target)
		}
		if !sleepCtx(ctx, poll) {
			return nil
		}
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			if _, werr := io.WriteString(w, line); werr != nil {
				return werr
			}
			if strings.HasPrefix(line, joblogs.EndMarker) {
				return nil
			}
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !o.Follow {
			return nil
		}
		if !sleepCtx(ctx, poll) {
			return nil
		}
	}
}

// jobRunning reports whether a container of the job exists.
func jobRunning(ctx context.Context, e *Env, jobID string) bool {
	if e.Engine == nil {
		return false
	}
	cctx, cancel := engineCtx(ctx)
	defer cancel()
	list, err := e.Engine.ListContainers(cctx, map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelJob: jobID})
	return err == nil && len(list) > 0
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
