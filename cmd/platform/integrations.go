package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/adminctl"
)

func integrationFlags(create bool) []cli.Flag {
	return clientFlags(
		&cli.StringFlag{Name: "name", Usage: "integration name (unique)"},
		&cli.StringFlag{Name: "image", Usage: "image reference of the integration"},
		&cli.StringFlag{Name: "config-file", Usage: "file holding the config as a JSON object"},
		&cli.StringFlag{Name: "config", Usage: "the config as a JSON object (prefer --config-file for secrets)"},
		&cli.StringSliceFlag{Name: "secret-field", Usage: "top-level config key whose value is secret (repeat)"},
		&cli.DurationFlag{Name: "interval", Value: time.Hour, Usage: "how often the integration runs (>= 1m)"},
		&cli.StringFlag{Name: "collector", Usage: "collector ID to run it on"},
		&cli.StringFlag{Name: "pool", Usage: "pool to run it on (any active member), instead of --collector"},
		&cli.StringFlag{Name: "network", Usage: "network of the job container: none, host or bridge"},
		&cli.BoolFlag{Name: "strict", Usage: "refuse to save when the image cannot be checked now (its registry does not answer or has no such image); " +
			"without it such an image is saved with a warning. An image the signature policy refuses is refused either way"},
	)
}

var integrationsCommand = &cli.Command{
	Name:  "integrations",
	Usage: "create, list, show, update, assign and delete integrations",
	Subcommands: []*cli.Command{
		{
			Name: "create", Usage: "create an integration; its secret fields are encrypted at rest and never shown again",
			Flags:  integrationFlags(true),
			Action: withClient(createIntegration),
		},
		{
			Name: "list", Usage: "list integrations", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				return adminctl.ListIntegrations(c.Context, ac, out)
			}),
		},
		{
			Name: "show", Usage: "show an integration (secret values masked)", ArgsUsage: "ID", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				return adminctl.ShowIntegration(c.Context, ac, id, out)
			}),
		},
		{
			Name: "validate", ArgsUsage: "ID",
			Usage: "test the integration's credentials where its target is: its collector (or a pool member) runs it in validate mode, " +
				"ahead of queued collections, and it connects and checks its access, ingesting nothing; exit 0 only if it passed",
			Flags: clientFlags(&cli.DurationFlag{Name: "timeout", Value: 3 * time.Minute, Usage: "how long to wait for the result"}),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				return adminctl.ValidateAndWait(c.Context, ac, id, c.Duration("timeout"), time.Second, out)
			}),
		},
		{
			Name: "update", ArgsUsage: "ID", Flags: integrationFlags(false),
			Usage:  "change the given fields; in a new config, a secret field set to \"********\" keeps its stored value",
			Action: withClient(updateIntegration),
		},
		{
			Name: "assign", Usage: "move an integration to another collector or to a pool (its credentials move with it)",
			ArgsUsage: "ID", Flags: clientFlags(&cli.StringFlag{Name: "collector", Usage: "collector ID"},
				&cli.StringFlag{Name: "pool", Usage: "pool name: any active member may run it"}),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				to := api.AssignRequest{CollectorID: c.String("collector"), Pool: c.String("pool")}
				if (to.CollectorID == "") == (to.Pool == "") {
					return usageError(c, "give one of --collector or --pool")
				}
				return adminctl.AssignIntegration(c.Context, ac, id, to, out)
			}),
		},
		{
			Name: "delete", Usage: "delete an integration and cancel its jobs", ArgsUsage: "ID",
			Flags: clientFlags(&cli.BoolFlag{Name: "purge", Usage: "also delete its entities, relationships, jobs and job logs"}),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				return adminctl.DeleteIntegration(c.Context, ac, id, c.Bool("purge"), out)
			}),
		},
	},
}

func createIntegration(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
	if len(args) != 0 {
		return usageError(c, "create takes flags only")
	}
	if c.String("name") == "" || c.String("image") == "" {
		return usageError(c, "--name and --image are required")
	}
	cfg, err := adminctl.ReadConfig(c.String("config-file"), c.String("config"))
	if err != nil {
		return usageError(c, "%v", err)
	}
	if cfg == nil {
		cfg = []byte(`{}`)
	}
	return adminctl.CreateIntegration(c.Context, ac, api.IntegrationRequest{
		Name: c.String("name"), Image: c.String("image"), Config: cfg, SecretFields: c.StringSlice("secret-field"),
		IntervalSec: int(c.Duration("interval").Seconds()), CollectorID: c.String("collector"), Pool: c.String("pool"), Network: c.String("network"),
		Strict: c.Bool("strict"),
	}, out)
}

func updateIntegration(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
	id, err := oneArg(c, args, "ID")
	if err != nil {
		return err
	}
	if c.IsSet("collector") || c.IsSet("pool") {
		return usageError(c, "use `integrations assign ID --collector CID` (or --pool NAME) to move an integration")
	}
	var upd api.IntegrationUpdate
	if upd.Config, err = adminctl.ReadConfig(c.String("config-file"), c.String("config")); err != nil {
		return usageError(c, "%v", err)
	}
	str := func(name string) *string {
		if !c.IsSet(name) {
			return nil
		}
		v := c.String(name)
		return &v
	}
	upd.Name, upd.Image, upd.Network = str("name"), str("image"), str("network")
	upd.Strict = c.Bool("strict")
	if c.IsSet("secret-field") {
		f := c.StringSlice("secret-field")
		upd.SecretFields = &f
	}
	if c.IsSet("interval") {
		n := int(c.Duration("interval").Seconds())
		upd.IntervalSec = &n
	}
	return adminctl.UpdateIntegration(c.Context, ac, id, upd, out)
}
