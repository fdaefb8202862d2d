package runner_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integration"
)

// TestRecordsThroughTheChannel: a job whose integration writes its records
// to the records channel (as the SDK does) has them all uploaded, none
// through stdout: the container gets the channel's directory (relabelled
// shared) with a FIFO owned by the image's user, mode 0600, and its path
// in the environment; the directory is removed with the job. A refused
// line is named by its channel line.
func TestRecordsThroughTheChannel(t *testing.T) {
	r := newFakeRig(t)
	r.eng.channel = true
	var fifo os.FileInfo
	var fifoErr error
	r.eng.before = func(op, name string) {
		if op != "start" {
			return
		}
		fifo, fifoErr = os.Stat(filepath.Join(r.cfg.StateDir, "channels", "job_c", "records"))
	}
	r.eng.setProgram("job_c", func(ctx context.Context, stdout, stderr io.Writer) int {
		fmt.Fprintln(stderr, "writing to the channel")
		records(stdout, "k", 12_000) // more than a pipe holds, and than a batch
		fmt.Fprintln(stdout, "not a record")
		return 0
	})
	r.plat.push(r.lease("job_c", "int_c", "lease-1", 30, map[string]any{"token": "tok-channel"}))
	r.start()
	fin := r.finished("job_c")
	if fin.Records != 12_000 || fin.RefusedRecords != 1 || !strings.Contains(fin.Error, "records channel line 12001") {
		t.Errorf("finish = %+v, want 12000 records and the refused channel line 12001 named", fin)
	}
	r.gone("job_c")
	if fifoErr != nil || fifo.Mode()&os.ModeNamedPipe == 0 || fifo.Mode().Perm() != 0o600 {
		t.Fatalf("the channel at start: %v, %v; want a 0600 FIFO", fifo, fifoErr)
	}
	if st := fifo.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("the FIFO is owned by %d:%d, want the image's user 1000:1000", st.Uid, st.Gid)
	}
	r.eng.mu.Lock()
	spec := r.eng.containers["collector-job-job_c"]
	r.eng.mu.Unlock()
	if spec != nil {
		t.Error("the job's container outlived it")
	}
	if _, err := os.Stat(filepath.Join(r.cfg.StateDir, "channels", "job_c")); !os.IsNotExist(err) {
		t.Errorf("the channel's directory outlived the job: %v", err)
	}
}

// TestChannelSpec: the job container's mount and environment of the
// channel.
func TestChannelSpec(t *testing.T) {
	r := newFakeRig(t)
	r.eng.channel = true
	var spec *engine.ContainerSpec
	r.eng.before = func(op, name string) {
		if op == "start" {
			r.eng.mu.Lock()
			spec = r.eng.containers[name].spec
			r.eng.mu.Unlock()
		}
	}
	r.eng.setProgram("job_s", func(ctx context.Context, stdout, stderr io.Writer) int { records(stdout, "k", 1); return 0 })
	r.plat.push(r.lease("job_s", "int_s", "lease-1", 30, map[string]any{"token": "tok-spec"}))
	r.start()
	if fin := r.finished("job_s"); fin.Records != 1 || fin.Error != "" {
		t.Fatalf("finish = %+v", fin)
	}
	if spec == nil || len(spec.Mounts) != 1 {
		t.Fatalf("spec %+v: want one mount", spec)
	}
	m := spec.Mounts[0]
	if m.Target != runner.ChannelDir || m.Source != filepath.Join(r.cfg.StateDir, "channels", "job_s") || m.ReadOnly || m.Relabel != engine.RelabelShared {
		t.Errorf("channel mount %+v", m)
	}
	if got := spec.Env[integration.RecordsEnv]; got != runner.ChannelDir+"/records" {
		t.Errorf("%s = %q", integration.RecordsEnv, got)
	}
}

// startRefused is the fake engine refusing to start any container.
type startRefused struct{ *fakeEngine }

func (e startRefused) StartContainer(ctx context.Context, id string) error {
	return fmt.Errorf("start %s: the OCI runtime refused", id)
}

// TestChannelClosedWhenTheContainerNeverStarts: a job whose container the
// engine refuses to start fails, and the runner holds no descriptor of
// its records channel afterwards (it opened both ends before the start).
func TestChannelClosedWhenTheContainerNeverStarts(t *testing.T) {
	r := newFakeRig(t)
	r.engine = startRefused{r.eng}
	r.plat.push(r.lease("job_f", "int_f", "lease-1", 30, map[string]any{"token": "tok-refused"}))
	r.start()
	if fin := r.finished("job_f"); !strings.Contains(fin.Error, "the OCI runtime refused") {
		t.Fatalf("finish = %+v, want the start's refusal", fin)
	}
	r.gone("job_f")
	dir := filepath.Join(r.cfg.StateDir, "channels", "job_f")
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir) {
			t.Errorf("fd %s still open on %s", fd.Name(), target)
		}
	}
}
