package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
)

// slowPlatform answers the token exchange, and reads a records upload at
// rate bytes per second (a slow uplink seen from the platform's side).
func slowPlatform(t *testing.T, rate int) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathToken, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: 900})
	})
	mux.HandleFunc("POST /api/v1/collector/jobs/{id}/records", func(w http.ResponseWriter, r *http.Request) {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		buf := make([]byte, rate/100)
		n := 0
		for range tick.C {
			k, err := io.ReadFull(r.Body, buf)
			n += k
			if err != nil {
				break
			}
		}
		json.NewEncoder(w).Encode(api.IngestResult{Seq: 1, Accepted: n / 48})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func collectorClient(t *testing.T, base string, hc *http.Client) *api.CollectorClient {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return api.NewCollectorClient(base, "col_test", key, base, hc)
}

// TestUploadDeadlineGrowsWithTheBody: an upload that takes longer than a
// small call may take succeeds, because its deadline grows with its size;
// the same upload under a fixed deadline (what one overall client timeout
// gives) fails, as a retryable timeout.
func TestUploadDeadlineGrowsWithTheBody(t *testing.T) {
	const rate = 64 << 10
	srv := slowPlatform(t, rate)
	body := []byte(strings.Repeat(`{"entity":{"_key":"k","_type":"t","_class":"C"}}`+"\n", (96<<10)/48)) // ~1.5 s at 64 KiB/s

	c := collectorClient(t, srv.URL, nil)
	// A quarter of the link: a loaded machine reads the body late (its
	// ticker slips), and the deadline must still be the body's, not the call's.
	c.SetTimeouts(api.Timeouts{Call: 300 * time.Millisecond, UploadRate: rate / 4})
	start := time.Now()
	if _, err := c.UploadRecords(context.Background(), "job_1", "lease_1", 1, body); err != nil {
		t.Fatalf("upload with a deadline that grows with the body: %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the upload took %v: the link was not slow, the test proves nothing", took)
	}

	fixed := collectorClient(t, srv.URL, nil)
	fixed.SetTimeouts(api.Timeouts{Call: 300 * time.Millisecond})
	_, err := fixed.UploadRecords(context.Background(), "job_1", "lease_1", 1, body)
	if !errors.Is(err, context.DeadlineExceeded) || !api.Retryable(err) {
		t.Fatalf("upload under a fixed 300 ms deadline = %v, want a retryable deadline error", err)
	}
}

func TestDeadlines(t *testing.T) {
	d := api.DefaultTimeouts()
	for _, c := range []struct {
		n    int
		wait time.Duration
		want time.Duration
	}{
		{0, 0, 30 * time.Second},
		{4 << 20, 0, 30*time.Second + 256*time.Second}, // a full records batch at 16 KiB/s
		{100, api.MaxLongPoll, 30*time.Second + api.MaxLongPoll + 100*time.Second/(16<<10)},
	} {
		if got := d.For(c.n, c.wait); got != c.want {
			t.Errorf("For(%d, %v) = %v, want %v", c.n, c.wait, got, c.want)
		}
	}
	if d.For(100, api.MaxLongPoll) <= api.MaxLongPoll+20*time.Second {
		t.Errorf("a long poll's deadline leaves no room past its wait")
	}
}

func TestRetryable(t *testing.T) {
	status := func(s int) error { return fmt.Errorf("upload: %w", &api.Error{Status: s, Code: "x"}) }
	transport := func(err error) error {
		return fmt.Errorf("upload: %w", &url.Error{Op: "Post", URL: "https://p/x", Err: err})
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"408", status(408), true},
		{"429", status(429), true},
		{"500", status(500), true},
		{"503", status(503), true},
		{"400", status(400), false},
		{"401", status(401), false},
		{"404", status(404), false},
		{"409 lease lost", status(409), false},
		{"413", status(413), false},
		{"deadline", transport(context.DeadlineExceeded), true},
		{"unexpected EOF", transport(io.ErrUnexpectedEOF), true},
		{"answer cut", fmt.Errorf("decode response: %w", io.ErrUnexpectedEOF), true},
		{"caller cancelled", transport(context.Canceled), false},
		{"local bug", errors.New("encode request: json: unsupported value"), false},
	} {
		if got := api.Retryable(c.err); got != c.want {
			t.Errorf("%s: Retryable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// TestRetryableResetStream: a call whose HTTP/2 stream the platform resets
// (a handler aborted, a proxy cutting in) is retryable, as is a connection
// closed before the answer over HTTP/1.1.
func TestRetryableResetStream(t *testing.T) {
	abort := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == api.PathToken {
			json.NewEncoder(w).Encode(api.TokenResponse{AccessToken: "tok", ExpiresIn: 900})
			return
		}
		io.Copy(io.Discard, r.Body)
		panic(http.ErrAbortHandler)
	})
	for _, h2 := range []bool{true, false} {
		srv := httptest.NewUnstartedServer(abort)
		srv.EnableHTTP2 = h2
		srv.Config.ErrorLog = nil
		srv.StartTLS()
		c := collectorClient(t, srv.URL, srv.Client())
		_, err := c.UploadRecords(context.Background(), "job_1", "lease_1", 1, []byte("{}\n"))
		if err == nil || !api.Retryable(err) {
			t.Errorf("HTTP/2 %v: an aborted answer gives %v, want a retryable error", h2, err)
		}
		t.Logf("HTTP/2 %v: %v", h2, err)
		srv.Close()
	}
}
