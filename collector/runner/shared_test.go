package runner_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/crypto"
)

// ReadRecords is the runner's reading of stdout, shared with run-local:
// lines numbered from 1 (blank ones counted), a too-long line refused.
func TestReadRecordsNumbersAndRefuses(t *testing.T) {
	rec := `{"entity":{"_key":"a","_type":"t","_class":"C"}}`
	long := `{"entity":{"_key":"b","_type":"t","_class":"C","x":"` + strings.Repeat("x", api.MaxRecordBytes) + `"}}`
	out := rec + "\n\nnot json\n" + long + "\r\n" + rec
	var ok []int
	refused := map[int]string{}
	err := runner.ReadRecords(strings.NewReader(out),
		func(line int, b []byte) error { ok = append(ok, line); return nil },
		func(line int, reason string) { refused[line] = reason })
	if err != nil {
		t.Fatal(err)
	}
	if len(ok) != 2 || ok[0] != 1 || ok[1] != 5 {
		t.Errorf("valid lines %v, want [1 5]", ok)
	}
	if len(refused) != 2 || !strings.Contains(refused[3], "invalid record") || !strings.Contains(refused[4], "limit") {
		t.Errorf("refused %v, want lines 3 (syntax) and 4 (too long)", refused)
	}
	stop := errors.New("stop")
	if err := runner.ReadRecords(strings.NewReader(rec+"\n"+rec+"\n"), func(int, []byte) error { return stop }, nil); !errors.Is(err, stop) {
		t.Errorf("ReadRecords = %v, want the error of ok", err)
	}
}

func TestContainerSpecIsHardened(t *testing.T) {
	spec, err := runner.ContainerSpec(runner.JobContainer{Name: "n", SecretName: "s", Image: "img@sha256:x", ImageUser: "65532:65533",
		Env: map[string]string{"MODE": "validate"}, Limits: crypto.Limits{Pids: 64}})
	if err != nil {
		t.Fatal(err)
	}
	if !spec.ReadOnlyRootfs || !spec.NoNewPrivileges || len(spec.CapDrop) != 1 || spec.CapDrop[0] != "ALL" || spec.Privileged {
		t.Errorf("spec not hardened: %+v", spec)
	}
	if s := spec.Secrets[0]; s.Target != runner.ConfigPath || s.Mode != 0o400 || s.UID != 65532 || s.GID != 65533 {
		t.Errorf("secret mount %+v", s)
	}
	if spec.Resources.Pids != 64 || spec.Resources.MemoryBytes <= 0 || spec.Env["MODE"] != "validate" {
		t.Errorf("resources %+v, env %v", spec.Resources, spec.Env)
	}
	if _, err := runner.ContainerSpec(runner.JobContainer{ImageUser: "nonroot"}); err == nil {
		t.Error("a named image user was accepted: the secret's owner cannot be known")
	}
	if runner.JobTimeout(crypto.Limits{}) <= 0 || runner.JobTimeout(crypto.Limits{TimeoutSec: 5}).Seconds() != 5 {
		t.Error("JobTimeout defaults wrong")
	}
}

// TestJobToldItsLimits: a job's container tells a Go program its CPUs
// (rounded up) and most of its memory limit, which Go reads from no cgroup
// on a cgroup v1 host; a value the job's environment gives already wins.
func TestJobToldItsLimits(t *testing.T) {
	for _, c := range []struct {
		name          string
		limits        crypto.Limits
		env           map[string]string
		procs, memlim string
	}{
		{"no CPU limit", crypto.Limits{}, nil, "", "483183820"}, // 90% of the 512 MiB default
		{"half a CPU", crypto.Limits{CPUs: 0.5, MemoryBytes: 256 << 20}, nil, "1", "241591910"},
		{"one CPU", crypto.Limits{CPUs: 1, MemoryBytes: 64 << 20}, nil, "1", "60397977"},
		{"one and a half", crypto.Limits{CPUs: 1.5}, nil, "2", "483183820"},
		{"the runner's own", crypto.Limits{CPUs: 4}, map[string]string{"GOMAXPROCS": "3"}, "3", "483183820"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, err := runner.ContainerSpec(runner.JobContainer{Name: "n", SecretName: "s", Image: "img@sha256:x", ImageUser: "65532", Env: c.env, Limits: c.limits})
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := spec.Env["GOMAXPROCS"]; got != c.procs || ok != (c.procs != "") {
				t.Errorf("GOMAXPROCS = %q (set %v), want %q", got, ok, c.procs)
			}
			if got := spec.Env["GOMEMLIMIT"]; got != c.memlim {
				t.Errorf("GOMEMLIMIT = %q, want %q", got, c.memlim)
			}
		})
	}
}
