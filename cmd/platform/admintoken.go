package main

import (
	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/adminctl"
)

var adminTokenCommand = &cli.Command{
	Name:  "admin-token",
	Usage: "manage the admin token",
	Subcommands: []*cli.Command{
		{
			Name:  "rotate",
			Usage: "replace the admin token: prints the new one once (and the platform writes it to its data dir); the old one stops working at once",
			Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				if len(args) != 0 {
					return usageError(c, "rotate takes no arguments")
				}
				return adminctl.RotateAdminToken(c.Context, ac, out)
			}),
		},
	},
}
