package engine

import (
	"context"
	"io"
)

// LogReader reads a container's stored log, following it or not.
type LogReader func(ctx context.Context, follow bool, stdout, stderr io.Writer) error

// FollowToExit implements ContainerLogs with follow for the backends: it
// follows the log while the container runs and returns once the container
// has exited and every byte it logged is copied. It takes the exit from
// wait, not from the end of the followed stream, because Podman's service
// (4.3, through the libpod and the Docker-compatible API alike) ends a
// follow 250–500 ms after the exit and without everything: a job writing
// 200,000 lines at once had 46–88k delivered. So when wait returns, the
// follow is stopped and the stored log is read again, past the bytes the
// follow already delivered. With an engine whose follow is complete the
// second read only skips.
func FollowToExit(ctx context.Context, read LogReader, wait func(context.Context) (int, error), stdout, stderr io.Writer) error {
	out, errw := &countingWriter{w: orDiscard(stdout)}, &countingWriter{w: orDiscard(stderr)}
	followCtx, stop := context.WithCancel(ctx)
	defer stop()
	followed := make(chan error, 1)
	go func() { followed <- read(followCtx, true, out, errw) }()
	if _, err := wait(ctx); err != nil {
		stop()
		<-followed
		return err
	}
	stop()
	<-followed // a follow that failed half way is made good by the read below
	return read(ctx, false, &skipWriter{w: out.w, skip: out.n}, &skipWriter{w: errw.w, skip: errw.n})
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// skipWriter drops the first skip bytes and writes the rest.
type skipWriter struct {
	w    io.Writer
	skip int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	all := len(p)
	if s.skip > 0 {
		n := min(s.skip, int64(len(p)))
		s.skip -= n
		p = p[n:]
	}
	if len(p) == 0 {
		return all, nil
	}
	n, err := s.w.Write(p)
	return all - len(p) + n, err
}
