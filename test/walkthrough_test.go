package test

// docs/writing-integrations.md is a test: its files are written and its
// shell blocks run, in order, in an empty directory, with the binaries
// built by the harness, its Podman, its registry, and (for the last step)
// a platform that trusts the key the walkthrough made and an installed
// collector.

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/env"
)

// docStep is one marked block of the walkthrough: a file to write, or a
// shell script to run.
type docStep struct {
	file   string // set for <!-- file: NAME -->
	body   string
	line   int
	script bool
}

// readWalkthrough returns the marked blocks of the doc, in order.
func readWalkthrough(t *testing.T, path string) []docStep {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []docStep
	var cur *docStep
	inBlock := false
	var body strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "<!-- file: "):
			cur = &docStep{file: strings.TrimSuffix(strings.TrimPrefix(line, "<!-- file: "), " -->"), line: n}
		case cur == nil && line == "<!-- run -->":
			cur = &docStep{script: true, line: n}
		case cur != nil && !inBlock && strings.HasPrefix(line, "```"):
			inBlock = true
			body.Reset()
		case cur != nil && inBlock && line == "```":
			cur.body = body.String()
			steps = append(steps, *cur)
			cur, inBlock = nil, false
		case inBlock:
			body.WriteString(line + "\n")
		}
	}
	return steps
}

// assignment is a top-level variable assignment of a script, carried to
// the later scripts (each runs in its own shell).
var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=[^$(]*(\$[A-Za-z_{][^$(]*)*$`)

func TestAuthorWalkthrough(t *testing.T) {
	need(t)
	root := repoRoot()
	steps := readWalkthrough(t, filepath.Join(root, "docs", "writing-integrations.md"))
	if len(steps) < 8 {
		t.Fatalf("the walkthrough has %d marked blocks: the markers are wrong", len(steps))
	}
	work := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	// The SDK's module is this repository: `go get` of it becomes a
	// replace directive (nothing leaves the machine; the module cache
	// holds every dependency).
	prelude := filepath.Join(t.TempDir(), "prelude.sh")
	os.WriteFile(prelude, []byte(`go() {
	if [ "$1 $2" = "get github.com/collectorhq/collector@latest" ]; then
		command go mod edit -require github.com/collectorhq/collector@v0.0.0 -replace github.com/collectorhq/collector=`+root+`
		return
	fi
	command go "$@"
}
`), 0o644)
	const token = "walkthrough-token-1f2e3d"
	registry := world.registry.Addr + "/walkthrough"
	vars := []string{
		"PATH=" + world.bin + ":" + filepath.Dir(goBin) + ":" + env.Get("PATH"),
		"BASH_ENV=" + prelude, "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "CGO_ENABLED=0",
		"REGISTRY=" + registry, "COSIGN_PASSWORD=walkthrough-password",
		env.ReleasePodman + "=" + strings.Join(world.podman.CLI().Args, " "),
		env.EngineHost + "=unix://" + world.podman.Socket, env.SecretDir + "=" + tmpfsDir(t, "walkthrough-secrets-"),
	}
	vars = append(vars, podmanEnv()...)
	var carried []string
	var p *platformProc
	for i, s := range steps {
		if !s.script {
			if err := os.WriteFile(filepath.Join(work, s.file), []byte(s.body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if p == nil && strings.Contains(s.body, "platform integrations create") {
			p = walkthroughOperator(t, work, registry, &vars)
		}
		script := "set -euo pipefail\n" + strings.Join(carried, "\n") + "\n" + s.body
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), vars...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("walkthrough block %d (docs/writing-integrations.md line %d) failed: %v\n%s\n--- output\n%s", i, s.line, err, s.body, out)
		}
		t.Logf("block at line %d (%v):\n%s", s.line, time.Since(start).Round(time.Millisecond), lastLines(string(out), 12))
		for _, l := range strings.Split(s.body, "\n") {
			if assignment.MatchString(l) {
				carried = append(carried, l)
			}
		}
	}
	if p == nil {
		t.Fatal("the walkthrough never reached the platform")
	}
	if strings.Contains(p.log.String(), token) {
		t.Error("the platform's log holds the walkthrough's token")
	}
}

// walkthroughOperator is the platform operator's side: a platform whose
// image policy trusts the walkthrough's key (release.pub, made by its
// keygen step) for its registry, a collector installed on Podman, and the
// variables the author's platform commands use.
func walkthroughOperator(t *testing.T, work, registry string, vars *[]string) *platformProc {
	t.Helper()
	pub, err := os.ReadFile(filepath.Join(work, "release.pub"))
	if err != nil {
		t.Fatalf("the walkthrough made no release.pub before its platform step: %v", err)
	}
	var policy map[string]any
	data, _ := os.ReadFile(world.policy)
	json.Unmarshal(data, &policy)
	docker := policy["transports"].(map[string]any)["docker"].(map[string]any)
	docker[registry] = []any{map[string]any{"type": "sigstoreSigned", "keyData": pub, "signedIdentity": map[string]any{"type": "matchRepository"}}}
	b, _ := json.Marshal(policy)
	path := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(path, b, 0o644)
	p := startPlatformWith(t, path)
	h := install(t, p, podmanKit(t))
	waitFor(t, "collector active", 60*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	*vars = append(*vars, env.PlatformServer+"="+p.url, env.PlatformToken+"="+p.token, env.PlatformCAFile+"="+filepath.Join(p.dataDir, "ca.crt"),
		env.CollectorID+"="+h.id)
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
