package adminctl

import (
	"context"
	"fmt"

	"github.com/collectorhq/collector/api"
)

// RunJob enqueues a job for an integration now.
func RunJob(ctx context.Context, c *api.AdminClient, integrationID string, out Output) error {
	j, err := c.RunIntegration(ctx, integrationID)
	if err != nil {
		return err
	}
	if out.JSON {
		return out.json(j)
	}
	fmt.Fprintf(out.W, "job %s for integration %s: %s (requested by %s)\n", j.ID, j.IntegrationID, j.State, j.RequestedBy)
	return nil
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
	tw := out.table()
	fmt.Fprintln(tw, "ID\tINTEGRATION\tCOLLECTOR\tSTATE\tATTEMPT\tRECORDS\tCREATED\tERROR")
	for _, j := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", j.ID, j.IntegrationID, j.CollectorID, j.State,
			j.Attempt, j.MaxAttempts, j.Records, fmtTime(&j.CreatedAt), orDash(j.Error))
	}
	return tw.Flush()
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
	fmt.Fprintf(out.W, "Job:          %s\nIntegration:  %s\nCollector:    %s\nState:        %s\nAttempt:      %d of %d\nRequested by: %s\nCreated:      %s\nStarted:      %s\nFinished:     %s\nExit code:    %s\nRecords:      %d accepted, %d refused\nPeak memory:  %d bytes\nError:        %s\n",
		j.ID, j.IntegrationID, j.CollectorID, j.State, j.Attempt, j.MaxAttempts, j.RequestedBy, fmtTime(&j.CreatedAt),
		fmtTime(j.StartedAt), fmtTime(j.FinishedAt), exit, j.Records, j.RefusedRecords, j.PeakMemoryBytes, orDash(j.Error))
	return nil
}

// JobLogs prints a job's logs.
func JobLogs(ctx context.Context, c *api.AdminClient, id string, out Output) error {
	text, err := c.JobLogs(ctx, id)
	if err != nil {
		return err
	}
	if out.JSON {
		return out.json(map[string]string{"job_id": id, "logs": text})
	}
	_, err = fmt.Fprint(out.W, text)
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
	tw := out.table()
	if kind == api.KindRelationship {
		fmt.Fprintln(tw, "KEY\tTYPE\tCLASS\tFROM\tTO\tDELETED")
		for _, it := range items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Key, it.Type, it.Class, it.From, it.To, fmtTime(it.DeletedAt))
		}
	} else {
		fmt.Fprintln(tw, "KEY\tTYPE\tCLASS\tLAST JOB\tDELETED")
		for _, it := range items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Key, it.Type, it.Class, it.JobID, fmtTime(it.DeletedAt))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out.W, "%d %s\n", len(items), map[bool]string{true: "relationships", false: "entities"}[kind == api.KindRelationship])
	return nil
}
