package cliutil_test

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
)

func TestInterspersed(t *testing.T) {
	var got []string
	var config string
	var quiet bool
	app := &cli.App{Name: "x", Commands: []*cli.Command{{
		Name:  "run-local",
		Flags: []cli.Flag{&cli.StringFlag{Name: "config"}, &cli.BoolFlag{Name: "quiet"}},
		Action: func(c *cli.Context) error {
			got, config, quiet = c.Args().Slice(), c.String("config"), c.Bool("quiet")
			return nil
		},
	}}}
	args := []string{"x", "run-local", "IMAGE", "--config", "cfg.json", "--quiet", "--", "--not-a-flag"}
	re := cliutil.Interspersed(app, args, "run-local")
	if err := app.Run(re); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"IMAGE", "--not-a-flag"}) || config != "cfg.json" || !quiet {
		t.Errorf("args %v, config %q, quiet %v (from %v)", got, config, quiet, re)
	}
	if other := []string{"x", "other", "A", "--b"}; !slices.Equal(cliutil.Interspersed(app, other, "run-local"), other) {
		t.Error("a command not named was reordered")
	}
}
