package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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
	if err := consumeAll(s, strings.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	if s.refused != 2 || s.sent != 2 {
		t.Errorf("refused %d, sent %d: want 2 and 2", s.refused, s.sent)
	}
	err := s.refusedErr()
	if err == nil || !strings.HasPrefix(err.Error(), "2 output line(s) refused, the first is output line 3: ") {
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
	if err := consumeAll(s, strings.NewReader(strings.Repeat("{}\n", 10_000))); err != nil {
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

// consumeAll reads r as the job's stdout and uploads the last batch.
func consumeAll(s *recordSink, r io.Reader) error {
	if err := s.consume(context.Background(), r, srcOutput); err != nil {
		return err
	}
	return s.flushLast(context.Background())
}

// TestTwoSourcesOneSink: stdout and the records channel read at once into
// one sink: every record uploaded once, in sequenced batches, counted by
// source.
func TestTwoSourcesOneSink(t *testing.T) {
	p := &countingAPI{}
	j := testJob(t, p)
	s := &recordSink{j: j}
	gen := func(prefix string, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"entity":{"_key":"%s%d","_type":"t","_class":"C"}}`+"\n", prefix, i)
		}
		return b.String()
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = s.consume(context.Background(), strings.NewReader(gen("out-", 7000)), srcOutput) })
	wg.Go(func() { errs[1] = s.consume(context.Background(), strings.NewReader(gen("ch-", 9000)), srcChannel) })
	wg.Wait()
	if err := errors.Join(append(errs, s.flushLast(context.Background()))...); err != nil {
		t.Fatal(err)
	}
	if s.sent != 16000 || s.bySource[srcOutput] != 7000 || s.bySource[srcChannel] != 9000 {
		t.Errorf("sent %d, by source %v; want 16000: 7000 and 9000", s.sent, s.bySource)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.keys) != 16000 {
		t.Errorf("%d distinct records uploaded, want 16000", len(p.keys))
	}
	for k, n := range p.keys {
		if n != 1 {
			t.Errorf("record %s uploaded %d times", k, n)
		}
	}
}

// countingAPI counts each record key uploaded, and checks the batches'
// sequence numbers follow one another.
type countingAPI struct {
	JobAPI
	mu   sync.Mutex
	keys map[string]int
	seq  int
}

func (f *countingAPI) UploadRecords(ctx context.Context, jobID, leaseID string, seq int, ndjson []byte) (*api.IngestResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq != f.seq+1 {
		return nil, fmt.Errorf("batch %d after %d", seq, f.seq)
	}
	f.seq = seq
	if f.keys == nil {
		f.keys = map[string]int{}
	}
	n := 0
	for _, line := range bytes.Split(bytes.TrimSpace(ndjson), []byte("\n")) {
		var rec struct {
			Entity struct {
				Key string `json:"_key"`
			} `json:"entity"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, err
		}
		f.keys[rec.Entity.Key]++
		n++
	}
	return &api.IngestResult{Seq: seq, Accepted: n}, nil
}

// TestNextBatchFillsWhileOneGoesUp: the sink reads the next batch while
// one is going up, so an integration is not held up by the platform's
// write (nor the platform left idle while it produces the next). Batches
// of 10: the first upload is held until the writer has handed over the
// first 20 records, which it cannot while the sink waits on that upload.
func TestNextBatchFillsWhileOneGoesUp(t *testing.T) {
	p := &holdingAPI{release: make(chan struct{})}
	j := testJob(t, p)
	j.r.cfg.BatchRecords = 10
	s := &recordSink{j: j}
	pr, pw := io.Pipe()
	go func() {
		for i := range 25 {
			if i == 20 {
				close(p.release)
			}
			fmt.Fprintf(pw, `{"entity":{"_key":"k%d","_type":"t","_class":"C"}}`+"\n", i)
		}
		pw.Close()
	}()
	if err := consumeAll(s, pr); err != nil {
		t.Fatal(err)
	}
	if p.heldUp {
		t.Error("batch 1 went up alone: the next batch was not read while it did")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.sent != 25 || s.seq != 3 || len(p.keys) != 25 {
		t.Errorf("sent %d in %d batches, %d distinct keys uploaded; want 25 in 3, 25", s.sent, s.seq, len(p.keys))
	}
}

// holdingAPI holds the first records batch until release closes (5 s at
// most: then heldUp).
type holdingAPI struct {
	countingAPI
	release chan struct{}
	heldUp  bool
}

func (f *holdingAPI) UploadRecords(ctx context.Context, jobID, leaseID string, seq int, ndjson []byte) (*api.IngestResult, error) {
	if seq == 1 {
		select {
		case <-f.release:
		case <-time.After(5 * time.Second):
			f.heldUp = true
		}
	}
	return f.countingAPI.UploadRecords(ctx, jobID, leaseID, seq, ndjson)
}
