package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integration"
)

// recordSink validates stdout lines and uploads them in sequenced batches:
// one batch goes up while the next fills (the integration is not held up
// by the platform's write, nor the platform by the integration), so it
// holds at most two batches in memory whatever the record count, and a
// batch starts up only once the one before it is stored. A refused line
// does not stop it: it counts every refusal (its own and the platform's),
// keeps the first, and the job fails (refusedErr).
type recordSink struct {
	j *jobRun
	// stop, if set, ends the run when an upload fails for good: the run
	// stops at once, not when the next batch is full.
	stop func()
	// mu: stdout and the records channel are read at once, each by its
	// own consume.
	mu    sync.Mutex
	cur   *batch  // the batch being filled
	spare *batch  // an emptied batch, for the next to fill
	up    *upload // the batch going up, nil when none
	// bySource counts the valid records read from each source.
	bySource map[string]int64
	seq      int
	sent     int64
	refused  int64
	first    refusal // the first refused line
	// limMu guards limit, which the upload in flight adapts while the
	// next batch fills.
	limMu sync.Mutex
	limit int // the byte bound of the next batch (batchBytes)
}

// batch is records waiting to go up, one per line, and where each came
// from.
type batch struct {
	buf   bytes.Buffer
	lines []lineRef
}

// upload is a batch on its way up; done closes when it is stored or has
// failed for good.
type upload struct {
	b    *batch
	seq  int
	done chan struct{}
	res  *api.IngestResult
	err  error
}

// refusal is one refused output line.
type refusal struct {
	line   lineRef
	reason string
}

// lineRef names an output line: its number in its source.
type lineRef struct {
	n   int
	src string // srcOutput or srcChannel
}

// The sources of records.
const (
	srcOutput  = "output"          // the container's stdout
	srcChannel = "records channel" // the FIFO the runner reads directly
)

func (l lineRef) String() string { return fmt.Sprintf("%s line %d", l.src, l.n) }

// maxLoggedRefusals bounds the refused lines the job's logs name one by one.
const maxLoggedRefusals = 20

// consume reads r, the source src, to its end (ReadRecords), uploading
// the valid records in batches and counting the refused lines. The last
// batch waits for flushLast (another source may add to it).
func (s *recordSink) consume(ctx context.Context, r io.Reader, src string) error {
	return ReadRecords(r,
		func(line int, rec []byte) error { return s.add(ctx, lineRef{line, src}, rec) },
		func(line int, reason string) { s.refuse(lineRef{line, src}, reason, "") })
}

// flushLast uploads what is left once every source is read, and waits
// for it to be stored.
func (s *recordSink) flushLast(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.send(ctx); err != nil {
		return err
	}
	return s.settle()
}

// settle waits for the batch going up, if any, and counts what it
// carried; its error, if it failed for good. A run that stops early
// settles too, so that nothing goes up after it ends.
func (s *recordSink) settle() error {
	u := s.up
	if u == nil {
		return nil
	}
	<-u.done
	s.up = nil
	if u.err != nil {
		return u.err
	}
	switch res := u.res; {
	case res.Duplicate && res.Accepted+res.Refused == 0 && len(u.b.lines) > 0:
		// Applied by an attempt whose answer was lost, and a platform
		// that does not say what it counted then: all of it.
		s.sent += int64(len(u.b.lines))
	default:
		// A duplicate's counts are those of the attempt that applied it.
		s.sent += int64(res.Accepted)
		s.platformRefused(res, u.b.lines)
	}
	u.b.buf.Reset()
	u.b.lines = u.b.lines[:0]
	s.spare = u.b
	return nil
}

// drain settles a run that ended early, keeping its counts right; the
// run has its error already.
func (s *recordSink) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.settle()
}

// ReadRecords reads an integration's stdout to its end as the runner
// does: line by line, numbered from 1 (blank lines count and are
// skipped), each checked by integration.ParseRecord. A valid record goes
// to ok (the slice is only valid during the call), a refused line to
// refused with the reason; a line longer than the record limit is refused
// without being held whole. An error from ok, or from reading, stops it.
// `collector run-local` reads with it too.
func ReadRecords(r io.Reader, ok func(line int, rec []byte) error, refused func(line int, reason string)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	n := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long) <= api.MaxRecordBytes {
				long = append(long, chunk...)
			}
			continue
		}
		if len(chunk) > 0 || len(long) > 0 {
			line := chunk
			if long != nil {
				line = append(long, chunk...)
				long = nil
			}
			n++
			if uerr := readLine(n, line, ok, refused); uerr != nil {
				return uerr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine checks one output line and hands it on.
func readLine(n int, line []byte, ok func(int, []byte) error, refused func(int, string)) error {
	line = bytes.TrimRight(line, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	if _, err := integration.ParseRecord(line); err != nil {
		refused(n, err.Error())
		return nil
	}
	return ok(n, line)
}

// add queues one valid record, sending the batch first when it is full.
func (s *recordSink) add(ctx context.Context, n lineRef, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		s.cur = &batch{}
	}
	if s.cur.buf.Len()+len(line)+1 > s.batchBytes() || len(s.cur.lines) >= s.j.r.cfg.BatchRecords {
		if err := s.send(ctx); err != nil {
			return err
		}
	}
	if s.bySource == nil {
		s.bySource = map[string]int64{}
	}
	s.bySource[n.src]++
	s.cur.buf.Write(line)
	s.cur.buf.WriteByte('\n')
	s.cur.lines = append(s.cur.lines, n)
	return nil
}

// refuse counts a refused line, keeps the first and logs the first few.
func (s *recordSink) refuse(line lineRef, reason, by string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseLocked(line, reason, by)
}

func (s *recordSink) refuseLocked(line lineRef, reason, by string) {
	s.refused++
	if s.refused == 1 {
		s.first = refusal{line: line, reason: reason}
	}
	switch {
	case s.refused <= maxLoggedRefusals:
		s.j.logf("record on %s refused%s: %s", line, by, reason)
	case s.refused == maxLoggedRefusals+1:
		s.j.logf("more records refused: they are counted, not logged one by one")
	}
}

// refusedErr fails a run that had refused lines: it is not a complete
// sync, and must not be taken for one (the platform would delete what
// those lines held).
func (s *recordSink) refusedErr() error {
	if s.refused == 0 {
		return nil
	}
	return fmt.Errorf("%d output line(s) refused, the first is %s: %s; a run with refused lines is not a complete sync",
		s.refused, s.first.line, s.first.reason)
}

// send starts the batch being filled on its way up, once the one before
// it is stored, retrying transient failures; the sequence number makes a
// retried batch count once. The next batch fills meanwhile, in the spare.
func (s *recordSink) send(ctx context.Context) error {
	if s.cur == nil || len(s.cur.lines) == 0 {
		return nil
	}
	if err := s.settle(); err != nil {
		return err
	}
	s.seq++
	u := &upload{b: s.cur, seq: s.seq, done: make(chan struct{})}
	s.cur, s.spare = s.spare, nil
	if s.cur == nil {
		s.cur = &batch{}
	}
	s.up = u
	go func() {
		defer close(u.done)
		u.err = s.j.retry(ctx, "upload records", func(ctx context.Context, l *api.Lease) error {
			var err error
			start := time.Now()
			u.res, err = s.j.r.api.UploadRecords(ctx, l.JobID, l.LeaseID, u.seq, u.b.buf.Bytes())
			s.adapt(u.b.buf.Len(), time.Since(start), err)
			return err
		})
		if u.err != nil && s.stop != nil {
			s.stop()
		}
	}()
	return nil
}

// Batch sizing: a batch should go up in about targetUpload on the link as
// measured so far. Batches start at initialBatchBytes, follow what the link
// carries up to Config.BatchBytes, and halve after an attempt that timed
// out or took too long; a retried batch keeps its bytes and number.
const (
	initialBatchBytes = 256 << 10
	minBatchBytes     = 64 << 10
	targetUpload      = 10 * time.Second
)

// batchBytes is the byte bound of the batch being filled.
func (s *recordSink) batchBytes() int {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	return s.limitLocked()
}

func (s *recordSink) limitLocked() int {
	if s.limit == 0 {
		s.limit = min(initialBatchBytes, s.j.r.cfg.BatchBytes)
	}
	return s.limit
}

// adapt sizes the next batches after an upload attempt of n bytes that
// took d and ended with err.
func (s *recordSink) adapt(n int, d time.Duration, err error) {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	limit := s.limitLocked()
	switch {
	case err == nil && d > 0:
		fit := int(float64(n) / d.Seconds() * targetUpload.Seconds())
		if n < limit/2 { // a short batch (the last one) says little about the link
			fit = max(fit, limit)
		}
		limit = fit
	case err != nil && (timedOut(err) || d >= targetUpload):
		limit /= 2
	}
	s.limit = min(max(limit, minBatchBytes), s.j.r.cfg.BatchBytes)
}

// timedOut reports whether err is a deadline or a network timeout.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// platformRefused counts the lines of a batch (lines) the platform
// refused, named by their output line numbers.
func (s *recordSink) platformRefused(res *api.IngestResult, lines []lineRef) {
	for _, e := range res.Errors {
		line := lineRef{src: srcOutput}
		if e.Line >= 1 && e.Line <= len(lines) {
			line = lines[e.Line-1]
		}
		s.refuseLocked(line, e.Reason, " by the platform")
	}
	s.refused += int64(max(res.Refused-len(res.Errors), 0)) // counted, not listed
}
