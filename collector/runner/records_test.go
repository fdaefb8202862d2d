package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
)

// testJob is a job run, past its envelope, that talks to jobs.
func testJob(t *testing.T, jobs JobAPI) *jobRun {
	t.Helper()
	r := &Runner{cfg: DefaultConfig(), api: jobs, log: slog.New(slog.DiscardHandler)}
	var err error
	if r.state, err = openState(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	j := &jobRun{r: r, lease: &api.Lease{JobID: "job_1", LeaseID: "lease_1"}, log: r.log, job: &crypto.Job{JobID: "job_1"}}
	j.logs = newLogSink(j, nil)
	return j
}

// refusingAPI refuses the second line of every records batch.
type refusingAPI struct {
	JobAPI
	logs bytes.Buffer
}

func (f *refusingAPI) UploadRecords(ctx context.Context, jobID, leaseID string, seq int, ndjson []byte) (*api.IngestResult, error) {
	n := bytes.Count(ndjson, []byte("\n"))
	return &api.IngestResult{Seq: seq, Accepted: n - 1, Refused: 1, Errors: []api.LineError{{Line: 2, Reason: "duplicate _key"}}}, nil
}

func TestRefusalsCountedAndNamedByOutputLine(t *testing.T) {
	j := testJob(t, &refusingAPI{})
	rec := func(k string) string { return fmt.Sprintf(`{"entity":{"_key":%q,"_type":"t","_class":"C"}}`, k) }
	out := strings.Join([]string{rec("a"), "", "not a record", rec("b"), rec("c")}, "\n") + "\n"
	s := &recordSink{j: j}
	if err := s.consume(context.Background(), strings.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	if s.refused != 2 || s.sent != 2 {
		t.Errorf("refused %d, sent %d: want 2 and 2", s.refused, s.sent)
	}
	err := s.refusedErr()
	if err == nil || !strings.HasPrefix(err.Error(), "2 output line(s) refused, the first is line 3: ") {
		t.Errorf("refusedErr = %v, want 2 refused, the first line 3", err)
	}
	logs := j.logs.buf.String()
	if !strings.Contains(logs, "output line 3 refused: ") || !strings.Contains(logs, "output line 4 refused by the platform: duplicate _key") {
		t.Errorf("logs do not name the refused lines:\n%s", logs)
	}
}

func TestManyRefusalsCountedLogsBounded(t *testing.T) {
	j := testJob(t, nil)
	s := &recordSink{j: j}
	if err := s.consume(context.Background(), strings.NewReader(strings.Repeat("{}\n", 10_000))); err != nil {
		t.Fatal(err)
	}
	if s.refused != 10_000 {
		t.Errorf("refused %d, want 10000", s.refused)
	}
	logs := j.logs.buf.String()
	if n := strings.Count(logs, " refused: invalid record"); n != maxLoggedRefusals || !strings.Contains(logs, "more records refused") {
		t.Errorf("%d refusals logged one by one, want %d and a note:\n%s", n, maxLoggedRefusals, logs)
	}
}
