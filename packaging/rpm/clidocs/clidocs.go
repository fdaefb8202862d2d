// Package clidocs writes a program's manual page and its bash and zsh
// completions from its urfave/cli definitions, so that what the RPMs ship
// says exactly what the binary accepts. packaging/rpm/build.sh runs it
// through a generator build of each binary (gendocs.go.in).
package clidocs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// Write writes DIR/man/NAME.1, DIR/bash/NAME and DIR/zsh/_NAME for app.
func Write(app *cli.App, dir string) error {
	files := map[string]string{
		filepath.Join("man", app.Name+".1"): Man(app),
		filepath.Join("bash", app.Name):     Bash(app),
		filepath.Join("zsh", "_"+app.Name):  Zsh(app),
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("clidocs: %w", err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return fmt.Errorf("clidocs: %w", err)
		}
	}
	return nil
}

// node is one command of the tree, the root being the program itself.
type node struct {
	path  string // "" for the root, else the command names from it: "engine info"
	usage string
	names []string // the name and aliases
	args  string   // ArgsUsage
	desc  string   // Description
	subs  []*node
	flags []flag
}

type flag struct {
	names []string // with their dashes: --log-level, -l
	usage string
	value bool // takes a value: the next word is not a command
	def   string
	env   []string
}

// tree walks app's visible commands and flags.
func tree(app *cli.App) *node {
	app.Setup()
	root := &node{usage: app.Usage, desc: app.Description, args: app.ArgsUsage, flags: flags(app.Flags)}
	root.subs = commands(root, app.Commands)
	return root
}

func commands(parent *node, cmds []*cli.Command) []*node {
	var out []*node
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		n := &node{path: strings.TrimSpace(parent.path + " " + c.Name), usage: c.Usage, names: c.Names(), args: c.ArgsUsage, desc: c.Description}
		n.flags = flags(c.Flags)
		if !c.HideHelp && !hasFlag(n.flags, "--help") {
			n.flags = append(n.flags, flag{names: []string{"--help", "-h"}, usage: "show help"})
		}
		n.subs = commands(n, c.Subcommands)
		if len(n.subs) > 0 && !c.HideHelpCommand && !hasCommand(n.subs, "help") {
			n.subs = append(n.subs, &node{path: n.path + " help", usage: "Shows a list of commands or help for one command", names: []string{"help", "h"}})
		}
		out = append(out, n)
	}
	return out
}

func flags(fs []cli.Flag) []flag {
	var out []flag
	for _, f := range fs {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		var fl flag
		for _, name := range f.Names() {
			if len(name) == 1 {
				fl.names = append(fl.names, "-"+name)
			} else {
				fl.names = append(fl.names, "--"+name)
			}
		}
		if d, ok := f.(cli.DocGenerationFlag); ok {
			fl.value = d.TakesValue()
			fl.usage = d.GetUsage()
			fl.env = d.GetEnvVars()
			if fl.value {
				fl.def = d.GetDefaultText()
				if fl.def == "" {
					fl.def = d.GetValue()
				}
			}
		}
		out = append(out, fl)
	}
	return out
}

func hasFlag(fs []flag, name string) bool {
	for _, f := range fs {
		for _, n := range f.names {
			if n == name {
				return true
			}
		}
	}
	return false
}

func hasCommand(ns []*node, name string) bool {
	for _, n := range ns {
		for _, m := range n.names {
			if m == name {
				return true
			}
		}
	}
	return false
}

// all lists the tree's nodes, parents first.
func (n *node) all() []*node {
	out := []*node{n}
	for _, s := range n.subs {
		out = append(out, s.all()...)
	}
	return out
}

// help is the pseudo command "help": its arguments are its siblings.
func (n *node) help() bool { return len(n.names) > 0 && n.names[0] == "help" && len(n.subs) == 0 }

// words a node offers: its commands' names (a help command: its
// siblings') and its flags' names.
func (n *node) words(parent *node) (cmds, opts []string) {
	if n.help() && parent != nil {
		for _, s := range parent.subs {
			if !s.help() {
				cmds = append(cmds, s.names[0])
			}
		}
		return cmds, nil
	}
	for _, s := range n.subs {
		cmds = append(cmds, s.names...)
	}
	for _, f := range n.flags {
		opts = append(opts, f.names...)
	}
	return cmds, opts
}

// steps are the transitions "path|word" to the next path, and the
// value flags "path|--flag" whose next word is a value.
func (n *node) steps() (moves [][2]string, values []string) {
	for _, p := range n.all() {
		for _, s := range p.subs {
			for _, name := range s.names {
				moves = append(moves, [2]string{p.path + "|" + name, s.path})
			}
		}
		for _, f := range p.flags {
			if f.value {
				for _, name := range f.names {
					values = append(values, p.path+"|"+name)
				}
			}
		}
	}
	sort.Strings(values)
	return moves, values
}

// parents maps each node to its parent.
func (n *node) parents() map[*node]*node {
	m := map[*node]*node{}
	for _, p := range n.all() {
		for _, s := range p.subs {
			m[s] = p
		}
	}
	return m
}
