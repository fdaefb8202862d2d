package jobs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integration"
)

// maxLineErrors bounds the refusals an ingest result lists (all are counted).
const maxLineErrors = 20

// ErrBadBatch is a batch refused whole (too many records, a broken body).
var ErrBadBatch = errors.New("bad records batch")

// ParseBatch reads one NDJSON body (bounded by the caller) and validates
// each line with integration.ParseRecord, never holding a line over the
// record limit whole. Refused lines are counted in res and the first few
// listed with their line numbers; blank lines are skipped.
func ParseBatch(k BatchKey, body io.Reader) (*Batch, *api.IngestResult, error) {
	b := &Batch{Key: k}
	res := &api.IngestResult{Seq: k.Seq}
	err := scanLines(body, func(line int, text []byte, tooLong bool) error {
		if res.Accepted+res.Refused >= api.MaxBatchRecords {
			return fmt.Errorf("%w: over %d records in one batch", ErrBadBatch, api.MaxBatchRecords)
		}
		if tooLong {
			refuse(res, line, fmt.Sprintf("record over the %d-byte limit", api.MaxRecordBytes))
			return nil
		}
		rec, err := integration.ParseRecord(bytes.Clone(text))
		if err != nil {
			refuse(res, line, err.Error())
			return nil
		}
		res.Accepted++
		b.Records = append(b.Records, rec)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	b.Refused = res.Refused
	return b, res, nil
}

// refuse counts a refused line and lists the first few.
func refuse(res *api.IngestResult, line int, reason string) {
	res.Refused++
	if len(res.Errors) < maxLineErrors {
		res.Errors = append(res.Errors, api.LineError{Line: line, Reason: reason})
	}
}

// scanLines calls f for each line of r (1-based numbers, newline removed),
// never holding more than one record's worth: a longer line is reported as
// tooLong and skipped. Blank lines are skipped.
func scanLines(r io.Reader, f func(line int, b []byte, tooLong bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	over := false
	line := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !over {
				long = append(long, chunk...)
				if len(long) > api.MaxRecordBytes {
					over, long = true, nil
				}
			}
			continue
		}
		if len(chunk) > 0 || long != nil || over {
			line++
			b := chunk
			if long != nil {
				b = append(long, chunk...)
				long = nil
			}
			tooLong := over || len(b) > api.MaxRecordBytes+2
			over = false
			if trimmed := trimEOL(b); len(trimmed) > 0 || tooLong {
				if ferr := f(line, trimmed, tooLong); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Not a bad batch: it did not arrive in time (retryable).
			return fmt.Errorf("read body: %w", err)
		}
		if err != nil {
			return fmt.Errorf("%w: read body: %w", ErrBadBatch, err)
		}
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
