package main

import (
	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/adminctl"
)

var auditCommand = &cli.Command{
	Name:  "audit",
	Usage: "read and verify the hash-chained audit log",
	Subcommands: []*cli.Command{
		{
			Name: "list", Usage: "list audit entries, oldest first",
			Flags: clientFlags(
				&cli.Int64Flag{Name: "after", Usage: "only entries after this seq"},
				&cli.IntFlag{Name: "limit", Usage: "at most this many entries (0: all)"},
			),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				return adminctl.ListAudit(c.Context, ac, c.Int64("after"), c.Int("limit"), out)
			}),
		},
		{
			Name: "verify", Usage: "verify the whole chain; fails naming the first edited, missing, reordered or deleted entry",
			Flags: clientFlags(&cli.StringFlag{Name: "expect", Usage: "a head SEQ:HASH saved from an earlier verify: the chain must still hold it"}),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				return adminctl.VerifyAudit(c.Context, ac, c.String("expect"), out)
			}),
		},
	},
}
