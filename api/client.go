package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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

// maxResponseBytes bounds what a client reads from the platform.
const maxResponseBytes = 16 << 20

// transport is what both clients share: a base URL, an *http.Client and
// the credential of the moment.
type transport struct {
	base string
	hc   *http.Client
}

func newTransport(baseURL string, hc *http.Client) transport {
	if hc == nil {
		hc = http.DefaultClient
	}
	return transport{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// do sends in (if not nil) as JSON and decodes a 2xx body into out (if not nil).
func (t transport) do(ctx context.Context, method, path, bearer string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
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
