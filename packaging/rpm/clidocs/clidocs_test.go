package clidocs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/packaging/rpm/clidocs"
)

// testApp has what the real command lines use: global value and boolean
// flags with environment variables, nested commands, an alias, a hidden
// command and a hidden flag.
func testApp() *cli.App {
	return &cli.App{
		Name:    "tool",
		Usage:   "a test tool",
		Version: "1.2.3",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info: or error", EnvVars: []string{"TOOL_LOG_LEVEL"}},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "say less"},
		},
		Commands: []*cli.Command{
			{Name: "serve", Usage: "run the server", Description: "Serves.\n\nUntil stopped.", Flags: []cli.Flag{
				&cli.StringFlag{Name: "listen", Usage: "host:port", EnvVars: []string{"TOOL_LISTEN"}},
				&cli.BoolFlag{Name: "json", Usage: "JSON output"},
				&cli.StringFlag{Name: "secret", Hidden: true},
			}},
			{Name: "collectors", Aliases: []string{"c"}, Usage: "manage collectors", Subcommands: []*cli.Command{
				{Name: "create", Usage: "create one", ArgsUsage: "NAME", Flags: []cli.Flag{&cli.StringFlag{Name: "pool"}}},
				{Name: "list", Usage: "list them"},
			}},
			{Name: "debug-internals", Hidden: true},
		},
	}
}

// need finds a program the test runs: a skip without it, a failure in CI.
func need(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if env.InCI() {
			t.Fatalf("%s not found: install the Debian package %s", name, pkg)
		}
		t.Skipf("%s not found (Debian package %s)", name, pkg)
	}
	return path
}

func write(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// bashComplete runs the completion function for a command line whose last
// word is the one being completed, and returns the offered words, sorted.
func bashComplete(t *testing.T, bash, script string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+w+"'")
	}
	prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
		strconv.Itoa(len(words)-1) + "\n_tool\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return lines(string(out))
}

func TestBash(t *testing.T) {
	bash := need(t, "bash", "bash")
	script := write(t, clidocs.Bash(testApp()))
	cases := []struct {
		words []string
		want  []string
	}{
		{[]string{"tool", ""}, []string{"c", "collectors", "h", "help", "serve"}},
		{[]string{"tool", "se"}, []string{"serve"}},
		{[]string{"tool", "--"}, []string{"--help", "--log-level", "--quiet", "--version"}},
		{[]string{"tool", "serve", "--"}, []string{"--help", "--json", "--listen"}},
		{[]string{"tool", "collectors", ""}, []string{"create", "h", "help", "list"}},
		{[]string{"tool", "c", "cr"}, []string{"create"}},
		{[]string{"tool", "collectors", "create", "--"}, []string{"--help", "--pool"}},
		{[]string{"tool", "help", ""}, []string{"collectors", "serve"}},
		// A flag's value is not a command, and nothing is offered for it
		// (bash then completes file names).
		{[]string{"tool", "--log-level", "serve", ""}, []string{"c", "collectors", "h", "help", "serve"}},
		{[]string{"tool", "--log-level", ""}, nil},
		{[]string{"tool", "--log-level", "=", ""}, nil},
		{[]string{"tool", "--log-level", "=", "debug", "serve", "--j"}, []string{"--json"}},
		{[]string{"tool", "serve", "--listen", ""}, nil},
		// Hidden commands and flags are not offered.
		{[]string{"tool", "deb"}, nil},
		{[]string{"tool", "serve", "--se"}, nil},
	}
	for _, c := range cases {
		if got := bashComplete(t, bash, script, c.words...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.words, got, c.want)
		}
	}
}

// zshComplete runs the completion function with zsh's completion helpers
// replaced by ones that print what they were given: "cmd:desc" items of
// _describe, "<default>" for _default.
func zshComplete(t *testing.T, zsh, script string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+w+"'")
	}
	prog := "_describe() { local arr=${@[-1]}; print -rl -- ${(P)arr}; }\n" +
		"_default() { print -r -- '<default>'; }\n" +
		"words=(" + strings.Join(quoted, " ") + ")\nCURRENT=" + strconv.Itoa(len(words)) + "\n" +
		"source " + script + "\n"
	out, err := exec.Command(zsh, "-f", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	return lines(string(out))
}

func TestZsh(t *testing.T) {
	zsh := need(t, "zsh", "zsh")
	script := write(t, clidocs.Zsh(testApp()))
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	cases := []struct {
		words []string
		want  []string
	}{
		{[]string{"tool", ""}, []string{"c:manage collectors", "collectors:manage collectors", "h:Shows a list of commands or help for one command", "help:Shows a list of commands or help for one command", "serve:run the server"}},
		// _describe, not the function, keeps the words the prefix matches.
		{[]string{"tool", "serve", "--"}, []string{"--help:show help", "--json:JSON output", "--listen:host\\:port", "-h:show help"}},
		{[]string{"tool", "--"}, []string{"--help:show help", "--log-level:debug, info\\: or error", "--quiet:say less", "--version:print the version", "-h:show help", "-q:say less", "-v:print the version"}},
		{[]string{"tool", "c", ""}, []string{"create:create one", "h:Shows a list of commands or help for one command", "help:Shows a list of commands or help for one command", "list:list them"}},
		{[]string{"tool", "--log-level", ""}, []string{"<default>"}},
		{[]string{"tool", "--log-level", "debug", "serve", "--j"}, []string{"--help:show help", "--json:JSON output", "--listen:host\\:port", "-h:show help"}},
		{[]string{"tool", "collectors", "list", ""}, []string{"<default>"}},
	}
	for _, c := range cases {
		if got := zshComplete(t, zsh, script, c.words...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.words, got, c.want)
		}
	}
}

func TestMan(t *testing.T) {
	page := clidocs.Man(testApp())
	for _, want := range []string{
		`.TH "TOOL" 1 "" "tool 1.2.3"`,
		".SS \"tool serve\"", ".SS \"tool collectors create\"", `.B tool collectors create [options] NAME`,
		`\fB\-\-log\-level\fR \fIvalue\fR`, `(default: "info") [env: TOOL_LOG_LEVEL]`,
		".SH ENVIRONMENT", ".B TOOL_LISTEN\nserve \\-\\-listen",
		"Serves.\n.PP\nUntil stopped.", "Also: c.",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, hidden := range []string{"secret", "debug\\-internals"} {
		if strings.Contains(page, hidden) {
			t.Errorf("the page shows the hidden %q", hidden)
		}
	}
	man := need(t, "man", "man-db")
	path := filepath.Join(t.TempDir(), "tool.1")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(man, "--warnings", "-l", path)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(string(out), "tool collectors create [options] NAME") {
		t.Errorf("rendered page:\n%s", out)
	}
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}
