package runner_test

import (
	"context"
	"io"
	"testing"

	"github.com/collectorhq/collector/crypto"
)

// TestValidationBesideCollection: a validation of an integration whose
// collection is running runs at once beside it (the platform leases one
// active job per integration and mode); a second collection would wait.
func TestValidationBesideCollection(t *testing.T) {
	r := newFakeRig(t)
	release := make(chan struct{})
	r.eng.setProgram("job_c", func(ctx context.Context, stdout, stderr io.Writer) int {
		records(stdout, "k", 1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return 0
	})
	r.eng.setProgram("job_v", func(ctx context.Context, stdout, stderr io.Writer) int {
		io.WriteString(stdout, `{"validation":{"ok":true}}`+"\n")
		return 0
	})
	r.plat.push(r.lease("job_c", "int_same", "lease-c", 30, map[string]any{"token": "tok"}))
	r.start()
	r.waitUntil("the collection runs", func() bool { return r.eng.hasContainer("collector-job-job_c") })
	r.plat.push(r.lease("job_v", "int_same", "lease-v", 30, map[string]any{"token": "tok"}, func(j *crypto.Job) { j.Mode = crypto.ModeValidate }))
	fin := r.finished("job_v")
	if fin.ExitCode != 0 || fin.Error != "" || fin.Validation == nil || !fin.Validation.OK {
		t.Errorf("validation finish %+v (%+v): want it passed beside the running collection", fin, fin.Validation)
	}
	if r.plat.called("finish", "job_c", "") {
		t.Error("the collection finished before the validation: they did not run side by side")
	}
	close(release)
	if fin := r.finished("job_c"); fin.ExitCode != 0 || fin.Error != "" {
		t.Errorf("collection finish %+v", fin)
	}
}
