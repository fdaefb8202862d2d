package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

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

// forgetfulLogs is a platform's logs endpoint that stores a chunk once per
// (job, lease, seq) and loses its answer the first time: the chunk is
// stored, the runner sees a broken connection.
type forgetfulLogs struct {
	JobAPI
	mu       sync.Mutex
	stored   map[string]bool
	text     bytes.Buffer
	attempts map[int][]string // seq → the chunks sent under it
}

func (f *forgetfulLogs) UploadLogs(ctx context.Context, jobID, leaseID string, seq int, text []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[seq] = append(f.attempts[seq], string(text))
	key := fmt.Sprint(jobID, "/", leaseID, "/", seq)
	if !f.stored[key] {
		f.stored[key] = true
		f.text.Write(text)
		return fmt.Errorf("upload logs of job %s: %w", jobID, io.ErrUnexpectedEOF) // the answer is lost
	}
	return nil
}

func TestLogChunksRetriedUnderTheirNumberStoredOnce(t *testing.T) {
	f := &forgetfulLogs{stored: map[string]bool{}, attempts: map[int][]string{}}
	j := testJob(t, f)
	j.r.cfg.RetryBackoff = time.Millisecond
	var want strings.Builder
	for i := range 40_000 { // about 2.6 MiB: three chunks
		line := fmt.Sprintf("log line %d %s", i, strings.Repeat("é", 30))
		j.logs.append(line)
		want.WriteString(line + "\n")
	}
	j.logs.flush(context.Background())
	j.logs.append("after")
	j.logs.flush(context.Background())
	want.WriteString("after\n")

	if got := f.text.String(); got != want.String() {
		t.Errorf("the platform stored %d bytes, want the %d logged, once", len(got), want.Len())
	}
	if len(f.attempts) != 4 {
		t.Errorf("%d chunks, want 4 (1 MiB each at most)", len(f.attempts))
	}
	for seq := 1; seq <= len(f.attempts); seq++ {
		a := f.attempts[seq]
		if len(a) != 2 || a[0] != a[1] {
			t.Errorf("chunk %d: %d attempts, retried with other bytes: %v", seq, len(a), len(a) == 2 && a[0] != a[1])
			continue
		}
		if len(a[0]) > api.MaxLogBytes || !strings.HasSuffix(a[0], "\n") || !utf8.ValidString(a[0]) {
			t.Errorf("chunk %d (%d bytes) does not end at a line end", seq, len(a[0]))
		}
	}
}
