package adminctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/termsafe"
)

// integrationNames names the integrations of the jobs listed, one call
// each (a page lists at most a few distinct ones); a deleted one has none.
func integrationNames(ctx context.Context, c *api.AdminClient, list []api.Job) map[string]string {
	names := map[string]string{}
	for _, j := range list {
		if _, seen := names[j.IntegrationID]; seen {
			continue
		}
		names[j.IntegrationID] = ""
		if in, err := c.Integration(ctx, j.IntegrationID); err == nil {
			names[j.IntegrationID] = in.Name
		}
	}
	return names
}

// RunJob enqueues a job for an integration now.
func RunJob(ctx context.Context, c *api.AdminClient, integrationID string, out Output) error {
	j, err := c.RunIntegration(ctx, integrationID)
	if err != nil {
		return err
	}
	if out.JSON {
		return out.json(j)
	}
	out.printf("job %s for integration %s: %s (requested by %s)\n", j.ID, j.IntegrationID, j.State, j.RequestedBy)
	return nil
}

// ErrJobFailed: a job waited for ended other than succeeded.
var ErrJobFailed = errors.New("job did not succeed")

// Final reports whether a job's state is final.
func Final(state string) bool {
	switch state {
	case api.JobSucceeded, api.JobFailed, api.JobDead, api.JobCanceled:
		return true
	}
	return false
}

// RunJobAndWait enqueues a job, follows it until it ends (or timeout)
// and prints how it ended; a job that did not succeed is an error
// (ErrJobFailed), after the end of its logs.
func RunJobAndWait(ctx context.Context, c *api.AdminClient, integrationID string, timeout, every time.Duration, out Output) error {
	j, err := c.RunIntegration(ctx, integrationID)
	if err != nil {
		return err
	}
	return waitJob(ctx, c, j, timeout, every, out)
}

// ValidateAndWait queues a validation of the integration, waits for it
// and prints its result; a failed validation is an error (ErrJobFailed).
func ValidateAndWait(ctx context.Context, c *api.AdminClient, integrationID string, timeout, every time.Duration, out Output) error {
	j, err := c.ValidateIntegration(ctx, integrationID)
	if err != nil {
		return err
	}
	return waitJob(ctx, c, j, timeout, every, out)
}

// waitJob follows job j until it ends (or timeout) and prints how it
// ended; a job that did not succeed is an error (ErrJobFailed), after the
// end of its logs.
func waitJob(ctx context.Context, c *api.AdminClient, j *api.Job, timeout, every time.Duration, out Output) error {
	what := "job"
	if j.Mode == api.JobModeValidate {
		what = "validation job"
	}
	if !out.JSON {
		out.printf("%s %s for integration %s: %s; waiting for it to end\n", what, j.ID, j.IntegrationID, j.State)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := j.State
	var err error
	for !Final(j.State) {
		select {
		case <-wctx.Done():
			return fmt.Errorf("%s %s is still %s after %v (it goes on; `platform jobs show %s`)", what, j.ID, j.State, timeout, j.ID)
		case <-time.After(every):
		}
		if j, err = c.Job(wctx, j.ID); err != nil {
			return err
		}
		if j.State != last && !out.JSON {
			out.printf("%s %s: %s\n", what, j.ID, j.State)
			last = j.State
		}
	}
	if out.JSON {
		if err := out.json(j); err != nil {
			return err
		}
	} else if err := printJob(out, j); err != nil {
		return err
	}
	if j.State == api.JobSucceeded {
		return nil
	}
	if !out.JSON {
		if logs, err := c.JobLogs(ctx, j.ID); err == nil && logs != "" {
			out.printf("--- the end of its logs ---\n%s", termsafe.Text(lastLines(logs, 20)))
		}
	}
	return fmt.Errorf("%w: %s %s %s: %s", ErrJobFailed, what, j.ID, j.State, j.Error)
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// ListJobs prints jobs, newest first.
func ListJobs(ctx context.Context, c *api.AdminClient, f api.JobFilter, out Output) error {
	list, err := c.Jobs(ctx, f)
	if err != nil {
		return err
	}
	if out.JSON {
		return out.json(api.JobList{Jobs: list})
	}
	names := integrationNames(ctx, c, list)
	t := out.table("ID", "INTEGRATION", "NAME", "COLLECTOR", "STATE", "ATTEMPT", "RECORDS", "CREATED", "ERROR")
	for _, j := range list {
		t.row(j.ID, j.IntegrationID, orDash(names[j.IntegrationID]), orDash(j.CollectorID), j.State, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts),
			fmt.Sprint(j.Records), fmtTime(&j.CreatedAt), orDash(j.Error))
	}
	return t.flush()
}

// ShowJob prints one job.
func ShowJob(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	j, err := c.Job(ctx, id)
	if err != nil {
		return err
	}
	return printJob(out, j)
}

// CancelJob cancels a job.
func CancelJob(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	j, err := c.CancelJob(ctx, id)
	if err != nil {
		return err
	}
	return printJob(out, j)
}

func printJob(out Output, j *api.Job) error {
	if out.JSON {
		return out.json(j)
	}
	exit := "-"
	if j.ExitCode != nil {
		exit = fmt.Sprint(*j.ExitCode)
	}
	t := out.table()
	t.field("Job", j.ID)
	t.field("Integration", j.IntegrationID)
	t.field("Collector", orDash(j.CollectorID))
	if j.Pool != "" {
		t.field("Pool", j.Pool)
	}
	t.field("State", j.State)
	if j.Waiting != "" {
		t.field("Waiting", j.Waiting)
	}
	t.field("Attempt", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
	t.field("Requested by", j.RequestedBy)
	t.field("Created", fmtTime(&j.CreatedAt))
	t.field("Started", fmtTime(j.StartedAt))
	t.field("Finished", fmtTime(j.FinishedAt))
	t.field("Exit code", exit)
	if j.Mode == api.JobModeValidate {
		t.field("Mode", "validation (checks access, ingests nothing)")
		if v := j.Validation; v != nil {
			result := "passed"
			if !v.OK {
				result = "FAILED (" + v.Reason + "): " + v.Error
			}
			t.field("Validation", result)
			for _, c := range v.Checks {
				t.field("  check "+c.Name, orDash(c.Detail))
			}
		}
	} else {
		t.field("Records", fmt.Sprintf("%d accepted, %d refused", j.Records, j.RefusedRecords))
	}
	t.field("Peak memory", fmt.Sprintf("%d bytes", j.PeakMemoryBytes))
	t.field("Error", orDash(j.Error))
	return t.flush()
}

// JobLogs prints a job's logs. Only newline and tab reach the terminal
// as they are: everything else a terminal would act on (ESC sequences,
// carriage return, C1 controls, bidi overrides) is escaped, whether or not
// the output is a terminal, as a saved copy is read on one later. --json
// gives the exact text.
func JobLogs(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	text, err := c.JobLogs(ctx, id)
	if err != nil {
		return err
	}
	if out.JSON {
		return out.json(map[string]string{"job_id": id, "logs": text})
	}
	_, err = io.WriteString(out.W, termsafe.Text(text))
	return err
}

// ListItems prints an integration's entities or relationships.
func ListItems(ctx context.Context, c *api.AdminClient, kind, integrationID, typ string, deleted bool, out Output) error {
	items, err := c.Items(ctx, kind, integrationID, typ, deleted)
	if err != nil {
		return err
	}
	if out.JSON {
		if kind == api.KindRelationship {
			return out.json(api.ItemList{Relationships: items})
		}
		return out.json(api.ItemList{Entities: items})
	}
	var t *table
	if kind == api.KindRelationship {
		t = out.table("KEY", "TYPE", "CLASS", "FROM", "TO", "DELETED")
		for _, it := range items {
			t.row(it.Key, it.Type, it.Class, it.From, it.To, fmtTime(it.DeletedAt))
		}
	} else {
		t = out.table("KEY", "TYPE", "CLASS", "LAST JOB", "DELETED")
		for _, it := range items {
			t.row(it.Key, it.Type, it.Class, it.JobID, fmtTime(it.DeletedAt))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(out.W, "%d %s\n", len(items), map[bool]string{true: "relationships", false: "entities"}[kind == api.KindRelationship])
	return nil
}
