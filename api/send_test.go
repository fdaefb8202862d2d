package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// TestSendRewindsTheBody: through go-retryablehttp, as the collector sends,
// a call's body is neither copied (a 4 MiB records batch allocated less
// than 1 MiB) nor cut when an attempt is retried (the second carries all
// of it).
func TestSendRewindsTheBody(t *testing.T) {
	var mu sync.Mutex
	var got []int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, n)
		first := len(got) == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	rc := retryablehttp.NewClient()
	rc.Logger, rc.RetryWaitMin, rc.RetryWaitMax = nil, time.Millisecond, 10*time.Millisecond
	tr := newTransport(srv.URL, rc.StandardClient())
	body := bytes.Repeat([]byte("x"), 4<<20)
	ctx := context.Background()
	if _, err := tr.send(ctx, http.MethodPost, "/records", "tok", nil, body, 0, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != 2 || got[0] != int64(len(body)) || got[1] != int64(len(body)) {
		t.Errorf("attempts carried %v bytes; want two of %d", got, len(body))
	}
	mu.Unlock()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	if _, err := tr.send(ctx, http.MethodPost, "/records", "tok", nil, body, 0, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 1<<20 {
		t.Errorf("a call with a 4 MiB body allocated %d bytes: the body was copied", alloc)
	}
}
