package cliutil

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Interspersed lets the named commands take flags after their positional
// arguments (`collector run-local IMAGE --config FILE`): urfave/cli v2
// stops parsing flags at the first positional argument, so it moves that
// command's flags (with their values) before its positional arguments.
// Arguments after "--" stay positional.
func Interspersed(app *cli.App, args []string, commands ...string) []string {
	for i := 1; i < len(args); i++ {
		if !slices.Contains(commands, args[i]) {
			continue
		}
		cmd := app.Command(args[i])
		if cmd == nil {
			return args
		}
		return append(slices.Clone(args[:i+1]), reorder(cmd, args[i+1:])...)
	}
	return args
}

// reorder puts a command's flags first, then its positional arguments.
func reorder(cmd *cli.Command, args []string) []string {
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}
