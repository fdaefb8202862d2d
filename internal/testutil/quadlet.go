package testutil

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/collectorhq/collector/internal/env"
)

// BuildQuadlet builds Podman's Quadlet generator from the podman module in
// go.mod into a temporary dir and returns its path.
func BuildQuadlet(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quadlet")
	build := exec.Command("go", "build", "-o", bin, "github.com/containers/podman/v5/cmd/quadlet")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build quadlet: %v\n%s", err, out)
	}
	return bin
}

// QuadletDryrun runs the generator on the units in dir (quadlet -dryrun)
// and returns the services it generates, by name.
func QuadletDryrun(t testing.TB, quadlet, dir string) map[string]string {
	t.Helper()
	cmd := exec.Command(quadlet, "-dryrun")
	cmd.Env = append(os.Environ(), env.QuadletUnitDirs+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quadlet -dryrun: %v\n%s", err, out)
	}
	return splitDryrun(string(out))
}

// splitDryrun splits quadlet -dryrun's output ("---NAME.service---" then
// the unit) into units by name.
func splitDryrun(out string) map[string]string {
	units := map[string]string{}
	head := regexp.MustCompile(`^---(.+)---$`)
	var name string
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := head.FindStringSubmatch(sc.Text()); m != nil {
			if name != "" {
				units[name] = b.String()
			}
			name = m[1]
			b.Reset()
			continue
		}
		if name != "" {
			b.WriteString(sc.Text() + "\n")
		}
	}
	if name != "" {
		units[name] = b.String()
	}
	return units
}

// ExecStart is the command line of a unit's last ExecStart=.
func ExecStart(unit string) string {
	var exec string
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec = v
		}
	}
	return exec
}

// SplitExec splits a systemd command line into its words: whitespace
// separates them, double quotes group, and a backslash escapes the next
// character inside them (systemd.service(5), "Command lines").
func SplitExec(line string) []string {
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			w.WriteByte(line[i])
		case c == '"':
			quoted, in = !quoted, true
		case !quoted && (c == ' ' || c == '\t'):
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}
