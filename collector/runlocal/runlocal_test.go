package runlocal_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/runlocal"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/integration/manifest"
	"github.com/collectorhq/collector/selinux"
)

// fakeEngine runs nothing: its container writes the canned output.
type fakeEngine struct {
	img            engine.Image
	stdout, stderr string
	code           int
	spec           *engine.ContainerSpec
	secret         []byte
	secretRemoved  bool
	removed        bool
}

func (f *fakeEngine) InspectImage(ctx context.Context, ref string) (*engine.Image, error) {
	if ref != "img:1" {
		return nil, engine.ErrNotFound
	}
	return &f.img, nil
}
func (f *fakeEngine) PullImage(ctx context.Context, ref string, o engine.PullOptions) (*engine.Image, error) {
	return nil, errors.New("no registry here")
}
func (f *fakeEngine) CreateContainer(ctx context.Context, s *engine.ContainerSpec) (string, error) {
	f.spec = s
	return "c1", nil
}
func (f *fakeEngine) StartContainer(ctx context.Context, id string) error       { return nil }
func (f *fakeEngine) WaitContainer(ctx context.Context, id string) (int, error) { return f.code, nil }
func (f *fakeEngine) ContainerLogs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error {
	io.WriteString(stdout, f.stdout)
	io.WriteString(stderr, f.stderr)
	return nil
}
func (f *fakeEngine) StopContainer(ctx context.Context, id string, t time.Duration) error { return nil }
func (f *fakeEngine) RemoveContainer(ctx context.Context, id string, force bool) error {
	f.removed = true
	return nil
}
func (f *fakeEngine) CreateSecret(ctx context.Context, name string, data []byte) error {
	f.secret = data
	return nil
}
func (f *fakeEngine) RemoveSecret(ctx context.Context, name string) error {
	f.secretRemoved = true
	return nil
}

const manifestJSON = `{"manifest_version":1,"name":"t","version":"1","config_schema":{"type":"object","properties":{"token":{"type":"string","writeOnly":true},"n":{"type":"integer"}},"additionalProperties":false},
"resources":{"memory":"64Mi","pids":32,"timeout":"1m"},"network":{"access":"none"},"validation":{"supported":true}}`

func newFake(stdout string, code int) *fakeEngine {
	return &fakeEngine{img: engine.Image{User: "65532:65532", Labels: map[string]string{manifest.Label: manifestJSON}}, stdout: stdout, stderr: "a log line\n", code: code}
}

var off = false

func options(cfg string) runlocal.Options {
	return runlocal.Options{Image: "img:1", Config: []byte(cfg), Labels: selinux.Labeler{Enabled: &off}}
}

const ent = `{"entity":{"_key":"a","_type":"t_host","_class":"Host"}}`
const rel = `{"relationship":{"_key":"r","_type":"t_has","_class":"HAS","_fromEntityKey":"a","_toEntityKey":"b"}}`

func TestRunsAsTheRunnerWould(t *testing.T) {
	f := newFake(ent+"\n"+ent+"\n"+rel+"\n", 0)
	var logs, records bytes.Buffer
	o := options(`{"token":"s3cret","n":1}`)
	o.Logs, o.Records = &logs, &records
	res, err := runlocal.Run(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Entities != 2 || res.Relationships != 1 || res.ByType["t_host"] != 2 {
		t.Errorf("result %+v", res)
	}
	s := f.spec
	if !s.ReadOnlyRootfs || !s.NoNewPrivileges || s.CapDrop[0] != "ALL" || s.Secrets[0].Target != runner.ConfigPath || s.Secrets[0].Mode != 0o400 {
		t.Errorf("spec not the runner's: %+v", s)
	}
	// The environment tells the Go runtime its memory (90% of 64 MiB)
	// and holds nothing else.
	if s.Resources.MemoryBytes != 64<<20 || s.Resources.Pids != 32 || s.Network != "none" || len(s.Env) != 1 || s.Env["GOMEMLIMIT"] != "60397977" {
		t.Errorf("the manifest's limits and network not applied: %+v, network %q, env %v", s.Resources, s.Network, s.Env)
	}
	if string(f.secret) != `{"token":"s3cret","n":1}` || !f.secretRemoved || !f.removed {
		t.Errorf("secret %q, removed %v, container removed %v", f.secret, f.secretRemoved, f.removed)
	}
	if logs.String() != "a log line\n" || strings.Count(records.String(), "\n") != 3 {
		t.Errorf("logs %q, records %q", logs.String(), records.String())
	}
	var out bytes.Buffer
	res.Print(&out)
	if !strings.Contains(out.String(), "ok: exit 0") || !strings.Contains(out.String(), "2 entities, 1 relationships") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestRefusalsFailTheRun(t *testing.T) {
	f := newFake(ent+"\n{\"entity\":{}}\nnot json\n\x1b[31mred\n", 0)
	res, err := runlocal.Run(context.Background(), f, options(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Refused != 3 || res.Refusals[0].Line != 2 || res.Entities != 1 {
		t.Errorf("result %+v", res)
	}
	var out bytes.Buffer
	res.Print(&out)
	if !strings.Contains(out.String(), "refused: 3") || strings.Contains(out.String(), "\x1b") {
		t.Errorf("summary (escaped, naming the refusals):\n%q", out.String())
	}
	f = newFake(ent+"\n", integration.ExitAuth)
	if res, _ = runlocal.Run(context.Background(), f, options(`{}`)); res.OK() || res.Reason != "auth" {
		t.Errorf("exit 4: %+v", res)
	}
}

func TestRefusedBeforeRunning(t *testing.T) {
	f := newFake("", 0)
	_, err := runlocal.Run(context.Background(), f, options(`{"token": 5}`))
	if !errors.Is(err, runlocal.ErrRefused) || !strings.Contains(err.Error(), "config field token") {
		t.Errorf("a config the schema refuses: %v", err)
	}
	if f.spec != nil || f.secret != nil {
		t.Error("something ran")
	}
	f.img.Labels[manifest.Label] = strings.Replace(manifestJSON, `"supported":true`, `"supported":false`, 1)
	o := options(`{}`)
	o.Validate = true
	if _, err := runlocal.Run(context.Background(), f, o); !errors.Is(err, runlocal.ErrRefused) || !strings.Contains(err.Error(), "no validate mode") {
		t.Errorf("validate without a validate mode: %v", err)
	}
	f.img.User = "nonroot"
	delete(f.img.Labels, manifest.Label)
	if _, err := runlocal.Run(context.Background(), f, options(`{}`)); !errors.Is(err, runlocal.ErrRefused) {
		t.Errorf("a named image user: %v", err)
	}
	if _, err := runlocal.Run(context.Background(), f, runlocal.Options{Image: "missing:1"}); err == nil {
		t.Error("a missing image that cannot be pulled ran")
	}
}

func TestValidateMode(t *testing.T) {
	f := newFake(`{"validation":{"ok":false,"reason":"auth","error":"invalid credentials"}}`+"\n", integration.ExitAuth)
	o := options(`{}`)
	o.Validate = true
	res, err := runlocal.Run(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	if f.spec.Env[integration.ModeEnv] != integration.ModeValidate {
		t.Errorf("env %v: the mode is not set", f.spec.Env)
	}
	if res.OK() || res.Validation == nil || res.Validation.Reason != "auth" {
		t.Errorf("result %+v", res)
	}
	f = newFake(ent+"\n", 0) // a validation that emits records instead of its result
	if res, _ = runlocal.Run(context.Background(), f, o); res.OK() || res.Validation.OK {
		t.Errorf("a record instead of a validation result passed: %+v", res.Validation)
	}
}

// TestLimitsAsAJobWouldHave: run-local runs with what a job would get
// under the platform's default job limits: a manifest asking more (1Gi,
// 3h, a million pids) runs with 512 MiB, 1 h and 512 pids, and the
// report says so; before, it ran with the 1Gi a job never gets.
func TestLimitsAsAJobWouldHave(t *testing.T) {
	f := newFake(ent+"\n", 0)
	f.img.Labels[manifest.Label] = strings.Replace(manifestJSON, `"resources":{"memory":"64Mi","pids":32,"timeout":"1m"}`,
		`"resources":{"memory":"1Gi","pids":1048576,"timeout":"3h"}`, 1)
	res, err := runlocal.Run(context.Background(), f, options(`{"token":"s3cret","n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := f.spec.Resources; r.MemoryBytes != 512<<20 || r.Pids != 512 {
		t.Errorf("resources %+v: want the defaults' 512 MiB and 512 pids", r)
	}
	var out bytes.Buffer
	res.Print(&out)
	for _, want := range []string{"note: the manifest asks memory 1024 MiB (runs with 512 MiB", "note: the manifest asks pids 1048576 (runs with 512)", "note: the manifest asks timeout 3h0m0s (runs for 1h0m0s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
