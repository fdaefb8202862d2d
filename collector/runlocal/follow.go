package runlocal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/integration"
)

// follow reads the container's output to its exit, within the timeout.
func (o Options) follow(ctx context.Context, eng Engine, id string, res *Result) {
	runCtx, cancel := context.WithTimeout(ctx, runner.JobTimeout(res.limits))
	defer cancel()
	outR, outW := io.Pipe()
	logs := o.Logs
	if logs == nil {
		logs = io.Discard
	}
	var wg sync.WaitGroup
	var readErr error
	wg.Go(func() {
		if o.Validate {
			res.Validation, readErr = integration.ReadValidation(outR)
		} else {
			readErr = runner.ReadRecords(outR, func(_ int, line []byte) error { return res.record(line, o.Records) }, res.refuse)
		}
		outR.CloseWithError(readErr)
	})
	logErr := eng.ContainerLogs(runCtx, id, true, outW, logs)
	outW.Close()
	wg.Wait()
	code, waitErr := eng.WaitContainer(runCtx, id)
	switch {
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		stopCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer stop()
		eng.StopContainer(stopCtx, id, 10*time.Second)
		res.ExitCode, res.Error = -1, fmt.Sprintf("timed out after %v and was stopped", runner.JobTimeout(res.limits))
	case waitErr != nil:
		res.ExitCode, res.Error = -1, "wait for the container: "+waitErr.Error()
	case logErr != nil || readErr != nil:
		res.ExitCode, res.Error = code, fmt.Sprintf("read the output: %v", errors.Join(logErr, readErr))
	default:
		res.ExitCode = code
	}
	if code != 0 {
		res.Reason = integration.ReasonOf(code)
	}
	if o.Validate && res.Validation == nil {
		res.Validation = &integration.ValidationResult{OK: false, Reason: "failed", Error: "the integration's validation output could not be read"}
	}
}

// record counts one valid record line (and copies it when asked).
func (r *Result) record(line []byte, copyTo io.Writer) error {
	rec, err := integration.ParseRecord(line)
	if err != nil { // checked already by ReadRecords
		return err
	}
	if rec.Kind == integration.KindEntity {
		r.Entities++
	} else {
		r.Relationships++
	}
	r.ByType[rec.Type]++
	if copyTo != nil {
		if _, err := copyTo.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
	}
	return nil
}

// refuse counts a refused line and keeps the first few.
func (r *Result) refuse(line int, reason string) {
	r.Refused++
	if len(r.Refusals) < MaxRefusals {
		r.Refusals = append(r.Refusals, Refusal{Line: line, Reason: reason})
	}
}
