package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Error is an error response from the platform.
type Error struct {
	Status  int    // HTTP status
	Code    string // machine-readable, e.g. "token_used"
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("platform refused (%d %s): %s", e.Status, e.Code, e.Message)
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// CodeOf returns the code of an *Error in err's chain, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Retryable reports whether a failed call may succeed if made again, with
// the same body: the platform answered 408, 429 or 5xx, or the call did
// not complete (a network error, the call's deadline, a reset HTTP/2
// stream, a connection closed before the whole answer came). Every call
// that changes something on the platform is idempotent (records and logs
// carry their sequence number), so a retry never applies a body twice. A
// cancelled context is not retryable; a caller checks its own context.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	switch s := StatusOf(err); {
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s >= 500:
		return true
	case s != 0:
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// maxResponseBytes bounds what a client reads from the platform.
const maxResponseBytes = 16 << 20

// Timeouts are the deadlines a client gives each call, in place of one
// overall timeout (HTTPClient sets none): a call's deadline grows with the
// body it sends, so a large upload on a slow uplink is not cut while it
// progresses, and a stalled call still ends (as a Retryable error). A
// context deadline that comes sooner wins.
type Timeouts struct {
	// Call bounds a call with a small body and answer; every deadline
	// starts from it.
	Call time.Duration
	// UploadRate, in bytes per second, is the slowest uplink a body is
	// given time for: n bytes add n/UploadRate. 0 adds nothing.
	UploadRate int
}

// DefaultTimeouts gives a call 30 s, plus the time to send its body at
// 16 KiB/s (a 1 MiB logs chunk: 94 s; a 4 MiB records batch: 286 s), plus
// the wait of a long poll.
func DefaultTimeouts() Timeouts {
	return Timeouts{Call: 30 * time.Second, UploadRate: 16 << 10}
}

// For returns the deadline of a call that sends n bytes and whose answer
// may take wait to start (a long poll's wait).
func (t Timeouts) For(n int, wait time.Duration) time.Duration {
	d := t.Call + wait
	if t.UploadRate > 0 {
		d += time.Duration(n) * time.Second / time.Duration(t.UploadRate)
	}
	return d
}

// transport is what both clients share: a base URL, an *http.Client and
// the deadlines of its calls.
type transport struct {
	base     string
	hc       *http.Client
	timeouts Timeouts
}

func newTransport(baseURL string, hc *http.Client) transport {
	if hc == nil {
		hc = http.DefaultClient
	}
	return transport{base: strings.TrimRight(baseURL, "/"), hc: hc, timeouts: DefaultTimeouts()}
}

// SetTimeouts replaces the deadlines of the client's calls (DefaultTimeouts
// unless set); call it before the client is in use.
func (c *CollectorClient) SetTimeouts(t Timeouts) { c.t.timeouts = t }

// do sends in (if not nil) as JSON and decodes a 2xx body into out (if not nil).
func (t transport) do(ctx context.Context, method, path, bearer string, in, out any) error {
	var body io.Reader
	n := 0
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body, n = bytes.NewReader(b), len(b)
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeouts.For(n, 0))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	lr := io.LimitReader(resp.Body, maxResponseBytes)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp.StatusCode, lr)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, lr)
		return nil
	}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

func responseError(status int, r io.Reader) error {
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		return &Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	return &Error{Status: status, Code: "http_" + fmt.Sprint(status), Message: strings.TrimSpace(http.StatusText(status))}
}
