package main

import (
	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/adminctl"
)

var collectorsCommand = &cli.Command{
	Name:  "collectors",
	Usage: "create, list, show, pool and delete collectors; issue enrollment tokens",
	Subcommands: []*cli.Command{
		{
			Name: "create", Usage: "create a collector: prints its one-time enrollment token and install commands",
			ArgsUsage: "NAME",
			Flags:     clientFlags(&cli.StringFlag{Name: "pool", Usage: "pool the collector belongs to"}),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				name, err := oneArg(c, args, "NAME")
				if err != nil {
					return err
				}
				return adminctl.CreateCollector(c.Context, ac, api.CreateCollectorRequest{Name: name, Pool: c.String("pool")}, out)
			}),
		},
		{
			Name: "set-pool", Usage: "move a collector into a pool (--pool \"\" takes it out); its running jobs finish",
			// --pool is checked in the action, not by urfave/cli, which
			// would refuse it written after the ID (lateFlags applies it).
			ArgsUsage: "ID", Flags: clientFlags(&cli.StringFlag{Name: "pool", Usage: "pool name (required; \"\" for none)"}),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				if !c.IsSet("pool") {
					return usageError(c, "--pool is required (--pool \"\" takes the collector out of its pool)")
				}
				return adminctl.SetCollectorPool(c.Context, ac, id, c.String("pool"), out)
			}),
		},
		{
			Name: "upgrade", Usage: "ask one collector (ID), a pool's (--pool) or all (--all) to run another collector image; it is verified and resolved to its digest now",
			ArgsUsage: "[ID]",
			Flags: clientFlags(&cli.StringFlag{Name: "image", Usage: "the collector image (tag or digest; required)"},
				&cli.StringFlag{Name: "pool", Usage: "every collector of this pool"},
				&cli.BoolFlag{Name: "all", Usage: "every collector"}),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				req := api.UpgradeRequest{Pool: c.String("pool"), All: c.Bool("all"), Image: c.String("image")}
				switch len(args) {
				case 0:
				case 1:
					req.CollectorID = args[0]
				default:
					return usageError(c, "one collector ID at most (or --pool, or --all)")
				}
				if req.Image == "" {
					return usageError(c, "--image is required")
				}
				if err := req.Validate(); err != nil {
					return usageError(c, "%v", err)
				}
				return adminctl.Upgrade(c.Context, ac, req, out)
			}),
		},
		{
			Name: "list", Usage: "list collectors with their status", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				return adminctl.ListCollectors(c.Context, ac, out)
			}),
		},
		{
			Name: "show", Usage: "show a collector and its last heartbeat", ArgsUsage: "ID", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				return adminctl.ShowCollector(c.Context, ac, id, out)
			}),
		},
		{
			Name: "delete", Usage: "delete a collector and revoke its credentials (refused while integrations are assigned)",
			ArgsUsage: "ID", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				return adminctl.DeleteCollector(c.Context, ac, id, out)
			}),
		},
		{
			Name: "token", Usage: "issue a new enrollment token (the previous one stops working)", ArgsUsage: "ID", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				id, err := oneArg(c, args, "ID")
				if err != nil {
					return err
				}
				return adminctl.NewToken(c.Context, ac, id, out)
			}),
		},
	},
}
