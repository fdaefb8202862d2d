package clidocs

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Bash renders a bash completion script for app (for
// /usr/share/bash-completion/completions/NAME). It completes command
// names, then flags after a "-"; after a flag that takes a value it
// offers nothing, so bash falls back to file names (complete -o default).
func Bash(app *cli.App) string {
	root := tree(app)
	fn := "_" + ident(app.Name)
	moves, values := root.steps()
	parents := root.parents()
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s(1), generated from its command definitions\n", app.Name)
	fmt.Fprintf(&b, "# (packaging/rpm/clidocs): do not edit.\n\n")
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	b.WriteString("\tlocal cmd=\"\" w i skip=0 cmds=\"\" opts=\"\"\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n")
	b.WriteString("\t\tw=${COMP_WORDS[i]}\n")
	b.WriteString("\t\t# bash splits --flag=value at the \"=\": the value follows it.\n")
	b.WriteString("\t\tif [[ $w == = ]]; then skip=1; continue; fi\n")
	b.WriteString("\t\tif ((skip)); then skip=0; continue; fi\n")
	b.WriteString("\t\tcase \"$cmd|$w\" in\n")
	for _, v := range values {
		fmt.Fprintf(&b, "\t\t%s) skip=1 ;;\n", shQuote(v))
	}
	for _, m := range moves {
		fmt.Fprintf(&b, "\t\t%s) cmd=%s ;;\n", shQuote(m[0]), shQuote(m[1]))
	}
	b.WriteString("\t\tesac\n\tdone\n")
	b.WriteString("\tif [[ $prev == = ]]; then return 0; fi\n")
	if len(values) > 0 {
		b.WriteString("\tcase \"$cmd|$prev\" in\n\t")
		b.WriteString(strings.Join(quoteAll(values), "|"))
		b.WriteString(") return 0 ;;\n\tesac\n")
	}
	b.WriteString("\tcase \"$cmd\" in\n")
	for _, n := range root.all() {
		cmds, opts := n.words(parents[n])
		fmt.Fprintf(&b, "\t%s) cmds=%s opts=%s ;;\n", shQuote(n.path), shQuote(strings.Join(cmds, " ")), shQuote(strings.Join(opts, " ")))
	}
	b.WriteString("\tesac\n")
	b.WriteString("\tif [[ $cur == -* ]]; then\n")
	b.WriteString("\t\tmapfile -t COMPREPLY < <(compgen -W \"$opts\" -- \"$cur\")\n")
	b.WriteString("\telse\n")
	b.WriteString("\t\tmapfile -t COMPREPLY < <(compgen -W \"$cmds\" -- \"$cur\")\n")
	b.WriteString("\tfi\n")
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "complete -o default -F %s %s\n", fn, app.Name)
	return b.String()
}

// Zsh renders a zsh completion function for app (for
// /usr/share/zsh/site-functions/_NAME), with each command's and flag's
// usage as its description.
func Zsh(app *cli.App) string {
	root := tree(app)
	fn := "_" + ident(app.Name)
	moves, values := root.steps()
	parents := root.parents()
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n", app.Name)
	fmt.Fprintf(&b, "# zsh completion for %s(1), generated from its command definitions\n", app.Name)
	fmt.Fprintf(&b, "# (packaging/rpm/clidocs): do not edit.\n\n")
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("\tlocal cmd= w i skip=0\n")
	b.WriteString("\tlocal -a cmds opts\n")
	b.WriteString("\tfor ((i = 2; i < CURRENT; i++)); do\n")
	b.WriteString("\t\tw=${words[i]}\n")
	b.WriteString("\t\tif ((skip)); then skip=0; continue; fi\n")
	b.WriteString("\t\tcase \"$cmd|$w\" in\n")
	for _, v := range values {
		fmt.Fprintf(&b, "\t\t%s) skip=1 ;;\n", shQuote(v))
	}
	for _, m := range moves {
		fmt.Fprintf(&b, "\t\t%s) cmd=%s ;;\n", shQuote(m[0]), shQuote(m[1]))
	}
	b.WriteString("\t\tesac\n\tdone\n")
	if len(values) > 0 {
		b.WriteString("\tcase \"$cmd|${words[CURRENT-1]}\" in\n\t")
		b.WriteString(strings.Join(quoteAll(values), "|"))
		b.WriteString(") _default; return ;;\n\tesac\n")
	}
	b.WriteString("\tcase \"$cmd\" in\n")
	for _, n := range root.all() {
		p := parents[n]
		fmt.Fprintf(&b, "\t%s)\n", shQuote(n.path))
		fmt.Fprintf(&b, "\t\tcmds=(%s)\n", strings.Join(zshItems(n.commandItems(p)), " "))
		fmt.Fprintf(&b, "\t\topts=(%s)\n", strings.Join(zshItems(n.flagItems()), " "))
		b.WriteString("\t\t;;\n")
	}
	b.WriteString("\tesac\n")
	b.WriteString("\tif [[ ${words[CURRENT]} == -* ]]; then\n")
	b.WriteString("\t\t_describe -t options option opts\n")
	b.WriteString("\telif ((${#cmds})); then\n")
	b.WriteString("\t\t_describe -t commands command cmds\n")
	b.WriteString("\telse\n")
	b.WriteString("\t\t_default\n")
	b.WriteString("\tfi\n")
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "%s \"$@\"\n", fn)
	return b.String()
}

// item is a word and its description.
type item struct{ word, desc string }

func (n *node) commandItems(parent *node) []item {
	var out []item
	if n.help() && parent != nil {
		for _, s := range parent.subs {
			if !s.help() {
				out = append(out, item{s.names[0], s.usage})
			}
		}
		return out
	}
	for _, s := range n.subs {
		for _, name := range s.names {
			out = append(out, item{name, s.usage})
		}
	}
	return out
}

func (n *node) flagItems() []item {
	var out []item
	for _, f := range n.flags {
		for _, name := range f.names {
			out = append(out, item{name, f.usage})
		}
	}
	return out
}

// zshItems quotes "word:description" elements for _describe, whose
// separator is the first unescaped colon.
func zshItems(items []item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		desc := strings.Join(strings.Fields(it.desc), " ")
		out[i] = shQuote(strings.ReplaceAll(it.word, ":", `\:`) + ":" + strings.ReplaceAll(desc, ":", `\:`))
	}
	return out
}

// shQuote quotes s for bash and zsh alike.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shQuote(s)
	}
	return out
}

// ident turns a program name into a shell function name.
func ident(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, name)
}
