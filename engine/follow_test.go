package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/engine"
)

// fakeLog is a container log as an engine stores it, written one chunk per
// read, and read the way Podman's service reads it: a read of a log still
// being written ends in the half of the next line, sent as a whole line.
type fakeLog struct {
	mu      sync.Mutex
	chunks  []string // still to be written, one per read
	stored  string
	done    chan struct{}
	garble  func(stored string) string // what a follow delivers
	rewrite func(stored string) string // the store changes at the third read
	reads   int
}

func newFakeLog(lines, perChunk int) *fakeLog {
	f := &fakeLog{done: make(chan struct{})}
	var b strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&b, "%d\n", i)
		if i%perChunk == 0 || i == lines {
			f.chunks = append(f.chunks, b.String())
			b.Reset()
		}
	}
	return f
}

func (f *fakeLog) read(ctx context.Context, follow bool, stdout, stderr io.Writer) error {
	f.mu.Lock()
	f.reads++
	if f.rewrite != nil && f.reads == 3 {
		f.stored = f.rewrite(f.stored)
	}
	var next string
	if len(f.chunks) > 0 {
		next, f.chunks = f.chunks[0], f.chunks[1:]
		if len(f.chunks) == 0 {
			defer close(f.done)
		}
	}
	out := f.stored
	if first, _, _ := strings.Cut(next, "\n"); len(first) > 1 {
		out += first[:len(first)/2] + "\n" // the half record, completed by the service
	}
	f.stored += next
	if follow && f.garble != nil {
		out = f.garble(f.stored)
	}
	f.mu.Unlock()
	_, err := io.WriteString(stdout, out)
	io.WriteString(stderr, "log\n")
	return err
}

func (f *fakeLog) wait(ctx context.Context) (int, error) {
	select {
	case <-f.done:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func want(lines int) string {
	var b strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

func fastRounds(t *testing.T) {
	t.Cleanup(engine.SetRounds(time.Millisecond, time.Millisecond))
}

func TestFollowStoredDeliversEachLineOnce(t *testing.T) {
	fastRounds(t)
	f := newFakeLog(5000, 700)
	var out, errb bytes.Buffer
	if err := engine.FollowToExit(context.Background(), engine.FollowStored, f.read, f.wait, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != want(5000) {
		t.Fatalf("delivered %d bytes, want %d: the half lines of the rounds leaked or lines were lost", out.Len(), len(want(5000)))
	}
	if errb.String() != "log\n" {
		t.Errorf("stderr %q, want the one line once", errb.String())
	}
	if f.reads < 3 {
		t.Errorf("%d reads: the rounds were not exercised", f.reads)
	}
}

// A follow that skipped lines and sent a half one, as Podman's does, is an
// error at the exit, never a silent loss.
func TestFollowLiveGarbledIsAnError(t *testing.T) {
	f := newFakeLog(1000, 1000)
	f.garble = func(stored string) string {
		return "1\n2\n3\n9\n5" + "\n" // lines 4-8 skipped, a half of 50
	}
	var out bytes.Buffer
	err := engine.FollowToExit(context.Background(), engine.FollowLive, f.read, f.wait, &out, io.Discard)
	if !errors.Is(err, engine.ErrLogIncomplete) {
		t.Fatalf("FollowToExit over a garbled follow = %v, want ErrLogIncomplete", err)
	}
}

func TestFollowLiveCompleteFollow(t *testing.T) {
	f := newFakeLog(1000, 1000)
	f.garble = func(stored string) string { return stored[:len(stored)/2] } // ends early, but right
	var out bytes.Buffer
	if err := engine.FollowToExit(context.Background(), engine.FollowLive, f.read, f.wait, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != want(1000) {
		t.Fatalf("delivered %d bytes, want %d", out.Len(), len(want(1000)))
	}
}

// A stored log that changes under what was delivered is an error too.
func TestFollowStoredChangedStoreIsAnError(t *testing.T) {
	fastRounds(t)
	f := newFakeLog(5000, 700)
	f.rewrite = func(stored string) string { return "X" + stored[1:] }
	err := engine.FollowToExit(context.Background(), engine.FollowStored, f.read, f.wait, io.Discard, io.Discard)
	if !errors.Is(err, engine.ErrLogIncomplete) {
		t.Fatalf("FollowToExit over a changed store = %v, want ErrLogIncomplete", err)
	}
}
