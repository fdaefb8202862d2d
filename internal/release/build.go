package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/collectorhq/collector/integration/manifest"
)

// BuildOptions say what Build builds and how.
type BuildOptions struct {
	// Package is the Go package of the integration's program, as go build
	// takes it (./cmd/my-integration), built in Dir (default: the current
	// directory, the author's module).
	Package string
	Dir     string
	// Image is the tag to build, REGISTRY/NAME:TAG.
	Image string
	// Manifest is the integration.yaml (default: integration.yaml in the
	// package's directory, else in Dir).
	Manifest string
	// Containerfile replaces the built-in one (it must COPY what the
	// stage holds: passwd, group and integration-NAME).
	Containerfile string
	// Podman is the podman command line (default: podman).
	Podman []string
	// Go is the go command (default: go); Tags are build tags.
	Go   string
	Tags string
	// Version, Commit and SourceURL fill the OCI labels (version defaults
	// to the manifest's, commit to "unknown"); they are also linked into
	// Collector's buildinfo package, when the program links it.
	Version, Commit, SourceURL string
	// Epoch is the creation time of the image and of every file in it
	// (SOURCE_DATE_EPOCH), 0 by default.
	Epoch int64
	// Push pushes the image to its tag after the build; TLSVerify false
	// allows a plain-HTTP registry (127.0.0.1).
	Push      bool
	TLSVerify bool
	// Log receives the steps' output (nil: discarded).
	Log io.Writer
}

// BuildResult is what Build made.
type BuildResult struct {
	Image    string
	ID       string // the image ID (config digest): the same for the same inputs
	Manifest *manifest.Manifest
}

// Build builds an integration's image the way packaging/images.sh builds
// Collector's own: a static Go binary (CGO_ENABLED=0, -trimpath, no build
// ID or VCS stamp), minimal passwd and group files with the non-root user
// 65532, every file and the image itself stamped with Epoch, FROM scratch,
// with the manifest (and, for older platforms, its config schema) in the
// image's labels. The same inputs give the same image ID.
func Build(ctx context.Context, o BuildOptions) (*BuildResult, error) {
	o.defaults()
	m, err := manifest.Load(o.manifestPath())
	if err != nil {
		return nil, err
	}
	if o.Version == "" {
		o.Version = m.Version
	}
	stage, err := os.MkdirTemp("", "collector-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	bin := "integration-" + m.Name
	if err := o.compile(ctx, filepath.Join(stage, bin)); err != nil {
		return nil, err
	}
	if err := stageFiles(stage); err != nil {
		return nil, err
	}
	cf, err := o.containerfile(m)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(stage, "Containerfile"), cf, 0o644); err != nil {
		return nil, err
	}
	if err := stamp(stage, o.Epoch); err != nil {
		return nil, err
	}
	id, err := o.podmanBuild(ctx, stage, m)
	if err != nil {
		return nil, err
	}
	if o.Push {
		if err := o.run(ctx, "", o.podmanCmd("push", "--quiet", "--tls-verify="+strconv.FormatBool(o.TLSVerify), o.Image, "docker://"+o.Image)...); err != nil {
			return nil, fmt.Errorf("push %s: %w", o.Image, err)
		}
	}
	return &BuildResult{Image: o.Image, ID: id, Manifest: m}, nil
}

func (o *BuildOptions) defaults() {
	if len(o.Podman) == 0 {
		o.Podman = []string{"podman"}
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.Commit == "" {
		o.Commit = "unknown"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// manifestPath is the manifest to read: the option, else integration.yaml
// in the package's directory, else in Dir.
func (o *BuildOptions) manifestPath() string {
	if o.Manifest != "" {
		return o.Manifest
	}
	if strings.HasPrefix(o.Package, ".") {
		p := filepath.Join(o.Dir, o.Package, manifest.DefaultFile)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(o.Dir, manifest.DefaultFile)
}

const buildinfoPkg = "github.com/collectorhq/collector/internal/buildinfo"

// compile builds the static binary.
func (o *BuildOptions) compile(ctx context.Context, out string) error {
	ldflags := fmt.Sprintf("-s -w -buildid= -X %s.Version=%s -X %s.Commit=%s", buildinfoPkg, o.Version, buildinfoPkg, o.Commit)
	args := []string{o.Go, "build", "-trimpath", "-buildvcs=false"}
	if o.Tags != "" {
		args = append(args, "-tags", o.Tags)
	}
	args = append(args, "-ldflags", ldflags, "-o", out, o.Package)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", o.Package, err, b)
	}
	return os.Chmod(out, 0o755)
}

// stageFiles writes passwd and group with root and the non-root user.
func stageFiles(stage string) error {
	files := map[string]string{
		"passwd": "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n",
		"group":  "root:x:0:\nnonroot:x:65532:\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(stage, name), []byte(body), 0o644); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(stage, name), 0o644); err != nil { // whatever the umask
			return err
		}
	}
	return nil
}

// stamp sets every staged file's times to the epoch, so nothing in the
// image depends on the clock.
func stamp(stage string, epoch int64) error {
	t := time.Unix(epoch, 0)
	return filepath.Walk(stage, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, t, t)
	})
}

// containerfile is the option's file, or the built-in one for m.
func (o *BuildOptions) containerfile(m *manifest.Manifest) ([]byte, error) {
	if o.Containerfile != "" {
		return os.ReadFile(o.Containerfile)
	}
	return Containerfile(m), nil
}

// podmanBuild runs podman build on the stage and returns the image ID.
func (o *BuildOptions) podmanBuild(ctx context.Context, stage string, m *manifest.Manifest) (string, error) {
	iid := filepath.Join(stage, "..", filepath.Base(stage)+".iid")
	defer os.Remove(iid)
	args := o.podmanCmd("build", "--quiet", "--no-cache", "--timestamp", strconv.FormatInt(o.Epoch, 10),
		"--label", manifest.Label+"="+m.Label())
	if m.ConfigSchema != nil {
		args = append(args, "--label", manifest.ConfigSchemaLabel+"="+string(m.ConfigSchema))
	}
	args = append(args, "--build-arg", "VERSION="+o.Version, "--build-arg", "REVISION="+o.Commit, "--build-arg", "SOURCE="+o.SourceURL,
		"-f", filepath.Join(stage, "Containerfile"), "-t", o.Image, "--iidfile", iid, stage)
	if err := o.run(ctx, stage, args...); err != nil {
		return "", fmt.Errorf("podman build %s: %w", o.Image, err)
	}
	id, err := os.ReadFile(iid)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(id)), nil
}

func (o *BuildOptions) podmanCmd(args ...string) []string {
	return append(append([]string(nil), o.Podman...), args...)
}

// run runs a command, its output to the log; a failure carries the output.
func (o *BuildOptions) run(ctx context.Context, dir string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, o.Log), io.MultiWriter(&out, o.Log)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%w\n%s", err, out.String())
		}
		return err
	}
	return nil
}

// containerfileTmpl is the built-in Containerfile of an integration: the
// recipe of packaging/containers/integration-*/Containerfile, which are
// its renderings (a test keeps them so).
var containerfileTmpl = template.Must(template.New("Containerfile").Parse(`# The {{.Name}} integration: reads /run/collector/config.json, writes
# records to stdout. FROM scratch, one static binary, non-root (65532).
# Built by collector-release build (docs/writing-integrations.md), which
# stages the binary, passwd and group, and sets the manifest label; see
# docs/integration-contract.md.
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=

COPY passwd /etc/passwd
COPY group /etc/group
COPY {{.Binary}} /usr/bin/{{.Binary}}

USER 65532:65532
ENTRYPOINT ["/usr/bin/{{.Binary}}"]

LABEL org.opencontainers.image.title="{{.Binary}}" \
      org.opencontainers.image.description="{{.Description}}" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.source="$SOURCE"
`))

// Containerfile is the built-in Containerfile for an integration.
func Containerfile(m *manifest.Manifest) []byte {
	desc := strings.NewReplacer("\n", " ", `"`, "'", `\`, "/", "$", "").Replace(m.Description)
	var b bytes.Buffer
	containerfileTmpl.Execute(&b, map[string]string{"Name": m.Name, "Binary": "integration-" + m.Name, "Description": desc})
	return b.Bytes()
}
