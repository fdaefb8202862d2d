package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/collectorhq/collector/api"
)

// logSink collects stderr lines, redacts every secret value of the job's
// config, and uploads them in chunks, bounded per job.
type logSink struct {
	j        *jobRun
	red      *redactor
	mu       sync.Mutex
	buf      bytes.Buffer
	total    int
	dropped  int
	maxTotal int

	// upMu makes flushes one at a time, so chunks go up in order and
	// each keeps the number it was given through every retry.
	upMu sync.Mutex
	seq  int // chunks numbered so far (from 1)
}

// maxJobLogBytes bounds what one job uploads as logs.
const maxJobLogBytes = 4 << 20

func newLogSink(j *jobRun, red *redactor) *logSink {
	return &logSink{j: j, red: red, maxTotal: maxJobLogBytes}
}

// append adds one line (a collector line, or an error), redacted.
func (l *logSink) append(line string) { l.store(l.red.redact(line)) }

// store adds one redacted line, within the job's bound.
func (l *logSink) store(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total+len(line)+1 > l.maxTotal {
		l.dropped += len(line) + 1
		return
	}
	l.buf.WriteString(line)
	l.buf.WriteByte('\n')
	l.total += len(line) + 1
}

// maxLogLine bounds one log line; the rest of a longer line is dropped and
// the cut marked, and the lines after it go on as usual.
const maxLogLine = 64 << 10

// consume reads the container's stderr, redacted as a stream (so a secret
// is found across lines and before any cut), line by line. Once the job's
// bound drops a line, the rest is only counted: redacting what is dropped
// would cost a job that floods its stderr for nothing.
func (l *logSink) consume(r io.Reader) {
	br := bufio.NewReaderSize(l.red.reader(r), maxLogLine)
	cut := false
	for !l.full() {
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !cut {
				l.store(string(chunk) + " [collector: line cut at 64 KiB]")
				cut = true
			}
			continue
		case len(chunk) > 0 && !cut:
			l.store(strings.TrimRight(string(chunk), "\r\n"))
		}
		cut = false
		if err != nil {
			return
		}
	}
	n, _ := io.Copy(io.Discard, r)
	l.mu.Lock()
	l.dropped += br.Buffered() + int(n)
	l.mu.Unlock()
}

// full reports whether the job's bound has dropped a line.
func (l *logSink) full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped > 0
}

// flush uploads what is pending; best effort, logs are never worth a job.
func (l *logSink) flush(ctx context.Context) {
	l.upMu.Lock()
	defer l.upMu.Unlock()
	text := l.take()
	for len(text) > 0 {
		part := text[:chunkEnd(text, api.MaxLogBytes)]
		text = text[len(part):]
		l.seq++
		seq := l.seq // a retry, under this lease or a handed-over one, resends part under seq
		err := l.j.retry(ctx, "upload logs", func(ctx context.Context, ls *api.Lease) error {
			return l.j.r.api.UploadLogs(ctx, ls.JobID, ls.LeaseID, seq, part)
		})
		if err != nil {
			l.j.log.Warn("job logs lost", "err", err, "bytes", len(part)+len(text))
			return
		}
	}
}

// take returns what is pending, with a note of what the bound dropped.
func (l *logSink) take() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped > 0 {
		fmt.Fprintf(&l.buf, "[collector: %d bytes of logs dropped over the %d-byte limit]\n", l.dropped, l.maxTotal)
		l.dropped = 0
	}
	text := bytes.Clone(l.buf.Bytes())
	l.buf.Reset()
	return text
}

// chunkEnd is where the first upload of text ends: after its last whole
// line within limit bytes (lines are cut far below the limit), so a chunk
// never splits a line or a character.
func chunkEnd(text []byte, limit int) int {
	if len(text) <= limit {
		return len(text)
	}
	if i := bytes.LastIndexByte(text[:limit], '\n'); i >= 0 {
		return i + 1
	}
	for limit > 1 && !utf8.RuneStart(text[limit]) {
		limit--
	}
	return limit
}

// flushEvery flushes with ctx every d until stop is closed or ctx ends; an
// upload under way when stop closes completes.
func (l *logSink) flushEvery(ctx context.Context, stop <-chan struct{}, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.flush(ctx)
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}
