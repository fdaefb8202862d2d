package platform

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/collectorhq/collector/api"
)

// withBodyDeadline sets each request's read deadline from its declared
// size (cfg.BodyGrace + size at cfg.BodyMinRate: a 4 MiB batch on a
// 1 Mbit/s uplink, ≈ 34 s, fits the defaults; a client trickling bytes to
// hold a connection does not), instead of one whole-request timeout that a
// large upload on a slow link cannot meet. It lifts the deadline once the
// body is read: net/http's background read of an idle HTTP/1.1 connection
// would otherwise hit it and cancel a handler still working.
func (s *Server) withBodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			size := max(r.ContentLength, 0)
			if r.ContentLength < 0 { // chunked: assume the largest upload
				size = api.MaxBatchBytes
			}
			d := s.cfg.BodyGrace + time.Duration(float64(size)/float64(s.cfg.BodyMinRate)*float64(time.Second))
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline when the body ends.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// A connection that sends no request within cfg.HeaderTimeout of its
// accept is closed, whatever its protocol: HTTP/1.1 has ReadHeaderTimeout
// for that, but an HTTP/2 connection that completes its handshake and
// sends nothing would otherwise stay for IdleTimeout (minutes), and a few
// thousand of them hold memory and descriptors.

// idleConnListener arms a first-request timer on every accepted connection.
type idleConnListener struct {
	net.Listener
	timeout time.Duration
}

func (l *idleConnListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	mc := &markedConn{Conn: c}
	mc.timer = time.AfterFunc(l.timeout, func() {
		if !mc.seen.Load() {
			c.Close()
		}
	})
	return mc, nil
}

// markedConn is a connection that remembers whether a request came on it.
type markedConn struct {
	net.Conn
	seen  atomic.Bool
	timer *time.Timer
	once  sync.Once
}

func (c *markedConn) mark() {
	c.once.Do(func() {
		c.seen.Store(true)
		c.timer.Stop()
	})
}

func (c *markedConn) Close() error {
	c.timer.Stop()
	return c.Conn.Close()
}

type connKey struct{}

// firstRequestDeadline is the server's ConnContext: it puts the marked
// connection in the context of its requests.
func firstRequestDeadline(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if mc, ok := c.(*markedConn); ok {
		return context.WithValue(ctx, connKey{}, mc)
	}
	return ctx
}

// markRequest disarms the connection's first-request timer.
func markRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mc, ok := r.Context().Value(connKey{}).(*markedConn); ok {
			mc.mark()
		}
		next.ServeHTTP(w, r)
	})
}
