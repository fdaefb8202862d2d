package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/collectorhq/collector/api"
)

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

// TestLogsOverTheBoundCountedNotKept: a job that floods its stderr keeps
// the job's bound of logs; the rest is counted as dropped, and said so.
func TestLogsOverTheBoundCountedNotKept(t *testing.T) {
	j := testJob(t, &forgetfulLogs{stored: map[string]bool{}, attempts: map[int][]string{}})
	j.logs.red = newRedactor([]string{"flood-secret-value"}, nil)
	line := strings.Repeat("x", 99) + "\n"
	const n = 100_000 // 10 MB
	j.logs.consume(strings.NewReader(strings.Repeat(line, n)))
	if j.logs.total > maxJobLogBytes {
		t.Errorf("%d bytes kept, over the %d-byte bound", j.logs.total, maxJobLogBytes)
	}
	if kept := j.logs.total + j.logs.dropped; kept < n*len(line)-maxLogLine || kept > n*len(line) {
		t.Errorf("kept %d + dropped %d bytes of %d", j.logs.total, j.logs.dropped, n*len(line))
	}
	text := string(j.logs.take())
	if !strings.HasSuffix(text, fmt.Sprintf("bytes of logs dropped over the %d-byte limit]\n", maxJobLogBytes)) {
		t.Errorf("the drop is not said: ...%q", text[max(0, len(text)-200):])
	}
}
