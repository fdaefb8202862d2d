package clidocs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// Man renders app's manual page, section 1, in roff: the global options,
// then each command (a section per command path, with its options), then
// the environment variables the options read.
func Man(app *cli.App) string {
	root := tree(app)
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s 1 \"\" %s \"User Commands\"\n", roffArg(strings.ToUpper(app.Name)), roffArg(strings.TrimSpace(app.Name+" "+app.Version)))
	// No hyphenation, ragged right: option and variable names stay whole.
	b.WriteString(".nh\n.ad l\n")
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", roffText(app.Name), roffText(app.Usage))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIcommand options\\fR] [\\fIarguments\\fR...]\n", roffText(app.Name))
	if root.desc != "" {
		b.WriteString(".SH DESCRIPTION\n")
		paragraphs(&b, root.desc)
	}
	if len(root.flags) > 0 {
		b.WriteString(".SH GLOBAL OPTIONS\n")
		manFlags(&b, root.flags)
	}
	b.WriteString(".SH COMMANDS\n")
	for _, n := range root.all()[1:] {
		if n.help() {
			continue
		}
		fmt.Fprintf(&b, ".SS %s\n", roffArg(app.Name+" "+n.path))
		synopsis := app.Name + " " + n.path
		if len(n.subs) > 0 {
			synopsis += " command"
		}
		if len(n.flags) > 0 {
			synopsis += " [options]"
		}
		if n.args != "" {
			synopsis += " " + n.args
		}
		fmt.Fprintf(&b, ".B %s\n.PP\n", roffText(synopsis))
		paragraphs(&b, n.usage)
		if n.desc != "" {
			b.WriteString(".PP\n")
			paragraphs(&b, n.desc)
		}
		if len(n.names) > 1 {
			fmt.Fprintf(&b, ".PP\nAlso: %s.\n", roffText(strings.Join(n.names[1:], ", ")))
		}
		manFlags(&b, n.flags)
	}
	if env := envVars(root); len(env) > 0 {
		b.WriteString(".SH ENVIRONMENT\n")
		b.WriteString("Each variable sets its option when the option is not given on the command line.\n")
		for _, e := range env {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roffText(e[0]), roffText(e[1]))
		}
	}
	return b.String()
}

func manFlags(b *strings.Builder, fs []flag) {
	for _, f := range fs {
		names := make([]string, len(f.names))
		for i, n := range f.names {
			names[i] = `\fB` + roffText(n) + `\fR`
		}
		line := strings.Join(names, ", ")
		if f.value {
			line += ` \fIvalue\fR`
		}
		fmt.Fprintf(b, ".TP\n%s\n", line)
		text := f.usage
		if f.def != "" && f.def != `""` {
			text += " (default: " + f.def + ")"
		}
		if len(f.env) > 0 {
			text += " [env: " + strings.Join(f.env, ", ") + "]"
		}
		b.WriteString(roffText(strings.Join(strings.Fields(text), " ")) + "\n")
	}
}

// envVars lists each environment variable and the options it sets.
func envVars(root *node) [][2]string {
	by := map[string][]string{}
	for _, n := range root.all() {
		for _, f := range n.flags {
			for _, e := range f.env {
				by[e] = append(by[e], strings.TrimSpace(n.path+" "+f.names[0]))
			}
		}
	}
	var out [][2]string
	for e, opts := range by {
		out = append(out, [2]string{e, strings.Join(dedupe(opts), ", ")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// paragraphs writes text, its blank lines as paragraph breaks.
func paragraphs(b *strings.Builder, text string) {
	for i, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(roffText(strings.Join(strings.Fields(p), " ")) + "\n")
	}
}

// roffText escapes a line of text: backslashes, hyphens (which roff
// would otherwise render as typographic hyphens in option names) and a
// leading control character.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffArg quotes a macro argument.
func roffArg(s string) string {
	return `"` + strings.ReplaceAll(roffText(s), `"`, `\(dq`) + `"`
}
