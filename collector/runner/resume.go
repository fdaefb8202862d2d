package runner

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

	"github.com/collectorhq/collector/engine"
)

// stream is one output stream of the job container as its consumer
// received it, across follows. A follow cut by an engine outage is made
// again once the engine answers, and reads the container's log from its
// start: each follow skips what was delivered before, once it has checked
// that those bytes are the same (SHA-256), and delivers only the rest. So
// every byte reaches the consumer once, and a log that changed meanwhile
// is engine.ErrLogIncomplete, never a silent loss or repeat.
type stream struct {
	name string
	w    io.Writer
	n    int64     // bytes delivered
	sum  hash.Hash // of those bytes
}

func newStream(name string, w io.Writer) *stream {
	return &stream{name: name, w: w, sum: sha256.New()}
}

// follow returns the writer of one follow of the log.
func (s *stream) follow() *replay {
	return &replay{s: s, prefix: s.n, check: sha256.New()}
}

// replay is one follow of a stream: its first prefix bytes were delivered
// by an earlier follow and are checked, not delivered again.
type replay struct {
	s      *stream
	prefix int64
	seen   int64
	check  hash.Hash
	err    error
}

func (r *replay) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	all := len(p)
	if r.seen < r.prefix {
		k := min(int64(len(p)), r.prefix-r.seen)
		r.check.Write(p[:k])
		r.seen += k
		p = p[k:]
		if r.seen == r.prefix && !bytes.Equal(r.check.Sum(nil), r.s.sum.Sum(nil)) {
			r.err = fmt.Errorf("%w: after the engine's outage the first %d bytes of its %s differ from those already read: lines were lost or garbled",
				engine.ErrLogIncomplete, r.prefix, r.s.name)
			return 0, r.err
		}
	}
	if len(p) == 0 {
		return all, nil
	}
	n, err := r.s.w.Write(p)
	r.s.sum.Write(p[:n])
	r.s.n += int64(n)
	r.seen += int64(n)
	return all - len(p) + n, err
}

// complete reports a follow that ended short of what was delivered before.
func (r *replay) complete() error {
	if r.seen < r.prefix {
		return fmt.Errorf("%w: after the engine's outage its %s has %d bytes, fewer than the %d already read",
			engine.ErrLogIncomplete, r.s.name, r.seen, r.prefix)
	}
	return nil
}
