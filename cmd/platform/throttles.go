package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/adminctl"
)

var throttlesCommand = &cli.Command{
	Name:  "throttles",
	Usage: "failed sign-ins being slowed down (admins): list them, clear one or all",
	Subcommands: []*cli.Command{
		{
			Name: "list", Usage: "list the sign-in failure counters of the last hour", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				l, err := ac.Throttles(c.Context)
				if err != nil {
					return fmt.Errorf("list throttles: %w", err)
				}
				if out.JSON {
					return json.NewEncoder(out.W).Encode(l)
				}
				t := out.Table("KEY", "FAILURES", "LAST FAILURE", "WAIT UNTIL")
				for _, th := range l.Throttles {
					t.Row(th.Key, fmt.Sprint(th.Failures), th.LastFailure.Local().Format(time.DateTime), when(th.BlockedUntil))
				}
				return t.Flush()
			}),
		},
		{
			Name: "clear", Usage: "clear one counter (KEY, as listed) or all (no argument)", ArgsUsage: "[KEY]", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				key := ""
				if len(args) > 1 {
					return usageError(c, "at most one KEY")
				}
				if len(args) == 1 {
					key = args[0]
				}
				if err := ac.ClearThrottle(c.Context, key); err != nil {
					return fmt.Errorf("clear throttle: %w", err)
				}
				if key == "" {
					key = "every counter"
				}
				fmt.Fprintf(out.W, "Cleared %s.\n", termsafe.String(key))
				return nil
			}),
		},
	},
}
