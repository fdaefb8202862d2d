package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/adminctl"
)

// idCommand is a subcommand that takes one ID and calls f.
func idCommand(name, usage string, f func(c *cli.Context, ac *api.AdminClient, id string, out adminctl.Output) error) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: "ID", Flags: clientFlags(),
		Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
			id, err := oneArg(c, args, "ID")
			if err != nil {
				return err
			}
			return f(c, ac, id, out)
		}),
	}
}

var jobsCommand = &cli.Command{
	Name:  "jobs",
	Usage: "run integrations now; list, show, cancel jobs and read their logs",
	Subcommands: []*cli.Command{
		{
			Name: "run", Usage: "enqueue a job for integration ID now (returns the job already queued or running, if any)", ArgsUsage: "ID",
			Flags: clientFlags(
				&cli.BoolFlag{Name: "wait", Usage: "wait for the job to end; exit 0 only if it succeeded (else 1, after the end of its logs)"},
				&cli.DurationFlag{Name: "timeout", Value: time.Hour, Usage: "with --wait, how long to wait"},
			),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				if c.Bool("wait") {
					return adminctl.RunJobAndWait(c.Context, ac, id, c.Duration("timeout"), time.Second, out)
				}
				return adminctl.RunJob(c.Context, ac, id, out)
			}),
		},
		{
			Name: "list", Usage: "list jobs, newest first",
			Flags: clientFlags(
				&cli.StringFlag{Name: "integration", Usage: "only this integration's jobs"},
				&cli.StringFlag{Name: "collector", Usage: "only this collector's jobs"},
				&cli.StringFlag{Name: "state", Usage: "only jobs in this state (queued, leased, running, succeeded, failed, canceled, dead)"},
				&cli.IntFlag{Name: "limit", Value: 50, Usage: "at most this many"},
			),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				return adminctl.ListJobs(c.Context, ac, api.JobFilter{IntegrationID: c.String("integration"),
					CollectorID: c.String("collector"), State: c.String("state"), Limit: c.Int("limit")}, out)
			}),
		},
		idCommand("show", "show a job", func(c *cli.Context, ac *api.AdminClient, id string, out adminctl.Output) error {
			return adminctl.ShowJob(c.Context, ac, id, out)
		}),
		idCommand("logs", "print a job's logs (secret values redacted by the collector)", func(c *cli.Context, ac *api.AdminClient, id string, out adminctl.Output) error {
			return adminctl.JobLogs(c.Context, ac, id, out)
		}),
		idCommand("cancel", "cancel a queued or running job", func(c *cli.Context, ac *api.AdminClient, id string, out adminctl.Output) error {
			return adminctl.CancelJob(c.Context, ac, id, out)
		}),
	},
}

// itemsCommand lists an integration's entities or relationships.
func itemsCommand(name, kind string) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: "list what the integration's jobs collected",
		Subcommands: []*cli.Command{{
			Name: "list", Usage: "list " + name + " of an integration",
			Flags: clientFlags(
				&cli.StringFlag{Name: "integration", Required: true, Usage: "integration ID"},
				&cli.StringFlag{Name: "type", Usage: "only this _type"},
				&cli.BoolFlag{Name: "deleted", Usage: "include those marked deleted"},
			),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				return adminctl.ListItems(c.Context, ac, kind, c.String("integration"), c.String("type"), c.Bool("deleted"), out)
			}),
		}},
	}
}

var (
	entitiesCommand      = itemsCommand("entities", api.KindEntity)
	relationshipsCommand = itemsCommand("relationships", api.KindRelationship)
)
