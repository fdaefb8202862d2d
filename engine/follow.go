package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// ErrLogIncomplete: what the engine delivered of a container's log differs
// from the log it stored, so the copy the consumer received may have lost,
// repeated or garbled lines. The consumer must not trust it (the runner
// fails the job).
var ErrLogIncomplete = errors.New("container log incomplete")

// LogReader reads a container's stored log, following it or not.
type LogReader func(ctx context.Context, follow bool, stdout, stderr io.Writer) error

// FollowMode says how far an engine's own follow of a log can be trusted.
type FollowMode int

const (
	// FollowStored is for Podman's service (4.3, through the libpod and the
	// Docker-compatible API alike), whose follow loses and garbles lines
	// once it catches up with the writer: the log is read from the store
	// in rounds while the container runs, and never past what is surely
	// written.
	FollowStored FollowMode = iota
	// FollowLive is for engines whose follow is complete (dockerd): the
	// log is followed live, then checked against the store at the exit.
	FollowLive
)

// Rounds of FollowStored: the first after firstRound, then every
// roundFactor times what the previous round took, at least minRound. A
// round reads the whole stored log, so the engine spends at most about
// 1/(roundFactor+1) of its time on the rounds of a long job.
var (
	firstRound  = 500 * time.Millisecond
	minRound    = time.Second
	roundFactor = 4
)

// maxHold bounds what a round of FollowStored holds back while it looks for
// the end of a line; past it the round stops delivering, and the next round
// reads the same bytes again.
const maxHold = 4 << 20

// FollowToExit implements ContainerLogs with follow for the backends: it
// returns once the container has exited, having copied every byte of its
// log exactly once, or with an error; never with a silent loss. It takes the
// exit from wait, and after the exit reads the stored log again: it checks
// that the bytes it delivered are, byte for byte (SHA-256), the stored log's
// prefix, then delivers the rest. A difference is ErrLogIncomplete.
//
// Why not the engine's follow, as is: Podman's service reads the k8s-file
// log with nxadm/tail (1.4), which in follow mode, on reaching the end of
// the file in the middle of a record conmon is writing, sends the half
// record as a line and seeks to the new end of the file (tail.go,
// tailFileSync), skipping everything written in between. Measured with
// `seq 1 200000` through Podman 4.3's Docker-compatible API, 15 runs: the
// follow matched the stored log for its first 14 to 167 kB only (of
// 1,288,895 bytes), then delivered sporadic lines (9026, 9039, 9094, 9106,
// ...) and half ones ("505" of 15505). Skipping the follow's byte count in
// the stored log, as this function did, then lost or repeated lines
// silently: 199,551 to 200,001 lines delivered in 18 of 20 runs of the
// conformance case. The service also ends a follow 250-500 ms after the
// exit, with 46-88k of 200,000 lines delivered.
//
// So with FollowStored the follow is not used: each round reads the stored
// log without follow, checks the prefix already delivered and delivers what
// follows up to the line before the last one of each stream (a read of a
// log being written may end in a half record, which the service sends as a
// whole line). With FollowLive the follow is delivered as it comes and
// checked at the exit.
func FollowToExit(ctx context.Context, mode FollowMode, read LogReader, wait func(context.Context) (int, error), stdout, stderr io.Writer) error {
	out, errw := newDelivered("stdout", stdout), newDelivered("stderr", stderr)
	var err error
	if mode == FollowLive {
		err = followLive(ctx, read, wait, out, errw)
	} else {
		err = followStored(ctx, read, wait, out, errw)
	}
	if err != nil {
		return err
	}
	return readRound(ctx, read, out, errw, true)
}

// followLive delivers the engine's follow until wait returns.
func followLive(ctx context.Context, read LogReader, wait func(context.Context) (int, error), out, errw *delivered) error {
	followCtx, stop := context.WithCancel(ctx)
	defer stop()
	followed := make(chan error, 1)
	go func() { followed <- read(followCtx, true, out, errw) }()
	_, err := wait(ctx)
	stop()
	<-followed // a follow that failed half way is made good by the final round
	return err
}

// followStored delivers rounds of the stored log until wait returns.
func followStored(ctx context.Context, read LogReader, wait func(context.Context) (int, error), out, errw *delivered) error {
	waitCtx, cancel := context.WithCancel(ctx)
	exited := make(chan error, 1)
	go func() { _, err := wait(waitCtx); exited <- err }()
	timer := time.NewTimer(firstRound)
	defer timer.Stop()
	for {
		select {
		case err := <-exited:
			cancel()
			return err
		case <-timer.C:
			start := time.Now()
			if err := readRound(ctx, read, out, errw, false); err != nil {
				cancel()
				<-exited
				return err
			}
			timer.Reset(max(minRound, time.Duration(roundFactor)*time.Since(start)))
		}
	}
}

// readRound reads the stored log once. A round before the exit only
// reports a difference from what was delivered; a failed read is tried
// again at the next round.
func readRound(ctx context.Context, read LogReader, out, errw *delivered, final bool) error {
	ro, re := newRound(out, final), newRound(errw, final)
	err := read(ctx, false, ro, re)
	for _, r := range []*round{ro, re} {
		if r.err != nil {
			return r.err
		}
		if r.werr != nil {
			return r.werr
		}
	}
	if err != nil {
		if !final {
			return nil
		}
		return err
	}
	if !final {
		return nil
	}
	for _, r := range []*round{ro, re} {
		if r.seen < r.prefix {
			return fmt.Errorf("%w: the engine's stored %s has %d bytes, fewer than the %d already delivered",
				ErrLogIncomplete, r.d.name, r.seen, r.prefix)
		}
	}
	return nil
}

// delivered is one stream as the consumer received it: its length and
// SHA-256.
type delivered struct {
	name string
	w    io.Writer
	n    int64
	sum  hash.Hash
}

func newDelivered(name string, w io.Writer) *delivered {
	if w == nil {
		w = io.Discard
	}
	return &delivered{name: name, w: w, sum: sha256.New()}
}

func (d *delivered) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	d.sum.Write(p[:n])
	d.n += int64(n)
	return n, err
}

// round is one stream of one read of the stored log: it hashes the first
// prefix bytes and compares them with what was delivered, then delivers
// what follows (all of it in the final round; up to the line before the
// last one in the others).
type round struct {
	d      *delivered
	final  bool
	prefix int64 // bytes delivered before this round
	seen   int64
	check  hash.Hash
	hold   []byte // past the prefix, not delivered yet
	full   bool   // hold overflowed: deliver nothing more this round
	err    error  // the stored log differs from what was delivered
	werr   error  // the consumer refused a write
}

func newRound(d *delivered, final bool) *round {
	return &round{d: d, final: final, prefix: d.n, check: sha256.New()}
}

func (r *round) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	all := len(p)
	if r.seen < r.prefix {
		k := min(int64(len(p)), r.prefix-r.seen)
		r.check.Write(p[:k])
		r.seen += k
		p = p[k:]
		if r.seen == r.prefix && !bytes.Equal(r.check.Sum(nil), r.d.sum.Sum(nil)) {
			r.err = fmt.Errorf("%w: the first %d bytes of %s the engine delivered differ from its stored log: lines were lost or garbled",
				ErrLogIncomplete, r.prefix, r.d.name)
			return 0, r.err
		}
	}
	if len(p) == 0 {
		return all, nil
	}
	r.seen += int64(len(p))
	if r.final {
		n, err := r.d.Write(p)
		r.werr = err
		return all - len(p) + n, err
	}
	if r.full {
		return all, nil
	}
	r.hold = append(r.hold, p...)
	if cut := beforeLastLine(r.hold); cut > 0 {
		if _, err := r.d.Write(r.hold[:cut]); err != nil {
			r.werr = err
			return 0, err
		}
		r.hold = append(r.hold[:0], r.hold[cut:]...)
	}
	if len(r.hold) > maxHold {
		r.full, r.hold = true, nil
	}
	return all, nil
}

// beforeLastLine returns the length of b up to and including its
// next-to-last newline: what precedes the last complete line; 0 if b holds
// fewer than two newlines.
func beforeLastLine(b []byte) int {
	last := bytes.LastIndexByte(b, '\n')
	if last < 0 {
		return 0
	}
	return bytes.LastIndexByte(b[:last], '\n') + 1
}
