package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine/enginetest"
	"github.com/collectorhq/collector/internal/testutil"
)

// world is what every e2e test shares: built binaries, images in the
// registry, signed, and the engines.
var world struct {
	stack                                       *enginetest.Stack
	dir                                         string
	bin                                         string // built binaries
	registry                                    *enginetest.Registry
	podman                                      *enginetest.Podman
	dockerd                                     *enginetest.Dockerd
	collectorImage, exampleImage, unsignedImage string
	ldapImage                                   string
	// movableImage is the example image, signed, under a tag a test later
	// moves to an unsigned image (after the platform accepted it).
	movableImage string
	policy       string // policy.json path
}

func TestMain(m *testing.M) { enginetest.Main(m, "e2e", setup, teardown) }

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func setup() error {
	s, err := enginetest.StartStack("collector-e2e-", true)
	world.stack = s
	if err != nil {
		return err
	}
	dir := s.Dir
	world.dir = dir
	world.registry, world.podman, world.dockerd = s.Registry, s.Podman, s.Dockerd
	world.bin = filepath.Join(dir, "bin")
	root := repoRoot()
	for _, b := range []string{"platform", "collector", "collector-release"} {
		if _, err := run(root, []string{"CGO_ENABLED=0"}, "go", "build", "-tags", "containers_image_openpgp", "-o", filepath.Join(world.bin, b), "./cmd/"+b); err != nil {
			return err
		}
	}
	reg := world.registry.Addr + "/collectorhq"
	podmanCmd := strings.Join(world.podman.CLI().Args, " ")
	env := append([]string{"PODMAN=" + podmanCmd, "REGISTRY=" + reg, "VERSION=e2e", "PUSH=1", "PUSH_TLS_VERIFY=false",
		"RELEASE=" + filepath.Join(world.bin, "collector-release")}, podmanEnv()...)
	if _, err := run(root, env, "bash", "packaging/images.sh"); err != nil {
		return err
	}
	world.collectorImage = reg + "/collector:e2e"
	world.exampleImage = reg + "/integration-example:e2e"
	world.ldapImage = reg + "/integration-ldap:e2e"
	// The same example image under a repository nobody signed.
	world.unsignedImage = world.registry.Addr + "/unsigned/integration-example:e2e"
	if _, err := world.podman.Run("push", "--tls-verify=false", world.exampleImage, "docker://"+world.unsignedImage); err != nil {
		return err
	}
	world.movableImage = reg + "/movable:e2e"
	if _, err := world.podman.Run("push", "--tls-verify=false", world.exampleImage, "docker://"+world.movableImage); err != nil {
		return err
	}
	return sign(reg)
}

// podmanEnv is the environment of the harness's podman CLI (its conf files).
func podmanEnv() []string {
	cmd := world.podman.CLI()
	var out []string
	for _, e := range cmd.Env {
		if strings.HasPrefix(e, "CONTAINERS_") || strings.HasPrefix(e, "TMPDIR=") {
			out = append(out, e)
		}
	}
	return out
}

// sign makes a cosign key pair, signs both images and writes the policy
// that trusts that key for the collectorhq repositories only.
func sign(reg string) error {
	keys := filepath.Join(world.dir, "keys")
	os.MkdirAll(keys, 0o700)
	env := []string{"COSIGN_PASSWORD=e2e-password"}
	rel := filepath.Join(world.bin, "collector-release")
	if _, err := run(keys, env, rel, "keygen", "--output-key-prefix", "cosign"); err != nil {
		return err
	}
	for _, img := range []string{world.collectorImage, world.exampleImage, world.movableImage, world.ldapImage} {
		if _, err := run(keys, env, rel, "sign", "--insecure", "--key", filepath.Join(keys, "cosign.key"), img); err != nil {
			return err
		}
	}
	pub, err := os.ReadFile(filepath.Join(keys, "cosign.pub"))
	if err != nil {
		return err
	}
	policy := map[string]any{
		"default": []any{map[string]any{"type": "reject"}},
		"transports": map[string]any{"docker": map[string]any{
			reg:                               []any{map[string]any{"type": "sigstoreSigned", "keyData": pub, "signedIdentity": map[string]any{"type": "matchRepository"}}},
			world.registry.Addr + "/unsigned": []any{map[string]any{"type": "sigstoreSigned", "keyData": pub, "signedIdentity": map[string]any{"type": "matchRepository"}}},
		}},
	}
	b, _ := json.MarshalIndent(policy, "", "  ")
	world.policy = filepath.Join(world.dir, "policy.json")
	return os.WriteFile(world.policy, b, 0o644)
}

func teardown() { world.stack.Stop() }

func need(t *testing.T) {
	t.Helper()
	enginetest.Need(t)
}

// platformProc is a running `platform serve`.
type platformProc struct {
	t       *testing.T
	dataDir string
	addr    string
	url     string
	cmd     *exec.Cmd
	log     *testutil.Buffer
	args    []string
	env     []string // added to the process's environment
	token   string   // an admin's API token, made at the first start
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPlatform starts the platform with short intervals for tests.
func startPlatform(t *testing.T) *platformProc { return startPlatformWith(t, world.policy) }

// startPlatformWith starts the platform with the image policy at policy,
// and env added to its environment.
func startPlatformWith(t *testing.T, policy string, env ...string) *platformProc {
	return startPlatformIn(t, filepath.Join(t.TempDir(), "platform"), policy, env...)
}

// startPlatformFlags starts the platform with flags added to serve's
// (a flag given again overrides the tests' short intervals).
func startPlatformFlags(t *testing.T, flags ...string) *platformProc {
	return startPlatformArgs(t, filepath.Join(t.TempDir(), "platform"), world.policy, flags)
}

// startPlatformIn is startPlatformWith with the data directory dataDir.
func startPlatformIn(t *testing.T, dataDir, policy string, env ...string) *platformProc {
	return startPlatformArgs(t, dataDir, policy, nil, env...)
}

func startPlatformArgs(t *testing.T, dataDir, policy string, flags []string, env ...string) *platformProc {
	addr := freeAddr(t)
	p := &platformProc{t: t, dataDir: dataDir, addr: addr, url: "https://" + addr, log: &testutil.Buffer{}, env: env}
	p.args = []string{"--log-format", "json", "serve", "--data-dir", p.dataDir, "--listen", addr, "--public-url", p.url,
		"--collector-image", world.collectorImage, "--image-policy", policy,
		"--heartbeat-interval", "1s", "--lease-ttl", "4s"}
	p.args = append(p.args, flags...)
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *platformProc) start() {
	p.cmd = exec.Command(filepath.Join(world.bin, "platform"), p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	if err := waitPlatform(p.dataDir, p.addr); err != nil {
		p.t.Fatalf("%v:\n%s", err, p.log)
	}
	if p.token == "" {
		tok, err := adminToken(p.dataDir, p.env...)
		if err != nil {
			p.t.Fatal(err)
		}
		p.token = tok
	}
}

// waitPlatform waits until the platform answers at addr with its CA in
// dataDir.
func waitPlatform(dataDir, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dataDir, "ca.crt")); err == nil {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("platform did not start")
}

// adminToken creates an admin on the host side, as an operator's first
// `platform users create` does (with the platform's environment env: its
// database), and returns its API token.
func adminToken(dataDir string, env ...string) (string, error) {
	out, err := run("", env, filepath.Join(world.bin, "platform"), "users", "create", "--login", "e2e-admin", "--role", "admin",
		"--token", "e2e", "--data-dir", dataDir)
	if err != nil {
		return "", err
	}
	_, tok, ok := strings.Cut(out, "API token (shown once):\n")
	if tok = strings.TrimSpace(tok); !ok || tok == "" {
		return "", fmt.Errorf("no API token in the output of platform users create:\n%s", out)
	}
	return tok, nil
}

func (p *platformProc) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
		p.cmd = nil
	}
}

// cli runs the platform admin CLI against p.
func (p *platformProc) cli(args ...string) (string, error) {
	full := append(args, "--server", p.url, "--data-dir", p.dataDir, "--token", p.token)
	return run("", nil, filepath.Join(world.bin, "platform"), full...)
}

// cliJSON runs the CLI with --json and decodes its output.
func (p *platformProc) cliJSON(v any, args ...string) {
	p.t.Helper()
	out, err := p.cli(append(args, "--json")...)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		p.t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

var _ = context.Background
