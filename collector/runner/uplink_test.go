package runner

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
)

// throttle forwards TCP connections from a listener on 127.0.0.1 to addr,
// carrying at most rate bytes per second from the client to the server:
// a slow uplink. It returns the listener's address.
func throttle(t *testing.T, addr string, rate int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			wg.Go(func() { copyAtRate(s, c, rate); s.Close(); c.Close() })
			wg.Go(func() { io.Copy(c, s); c.Close(); s.Close() })
		}
	})
	return ln.Addr().String()
}

// copyAtRate copies src to dst, rate bytes per second at most.
func copyAtRate(dst io.Writer, src io.Reader, rate int) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, max(rate/100, 1))
	for range tick.C {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// httpPlatform is the platform's job API over HTTP: it applies a records
// batch once per (job, lease, seq) and answers a repeat as a duplicate; when
// loseFirst is set, it applies a batch's first attempt and then never
// answers it (the answer is lost on the way back).
type httpPlatform struct {
	loseFirst bool

	mu       sync.Mutex
	applied  map[string]bool
	records  map[string]int // _key → times stored
	attempts map[int]int    // seq → attempts
}

func newHTTPPlatform(t *testing.T, loseFirst bool) (*httpPlatform, *httptest.Server) {
	p := &httpPlatform{loseFirst: loseFirst, applied: map[string]bool{}, records: map[string]int{}, attempts: map[int]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathToken, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: 900})
	})
	mux.HandleFunc("POST /api/v1/collector/jobs/{id}/records", p.serveRecords)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return p, srv
}

func (p *httpPlatform) serveRecords(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client gave up on the way
	}
	seq, _ := strconv.Atoi(r.Header.Get(api.HeaderBatchSeq))
	key := fmt.Sprint(r.PathValue("id"), "/", r.Header.Get(api.HeaderLease), "/", seq)
	p.mu.Lock()
	p.attempts[seq]++
	first, dup := p.attempts[seq] == 1, p.applied[key]
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if !dup {
		p.applied[key] = true
		for _, l := range lines {
			var rec struct {
				Entity struct {
					Key string `json:"_key"`
				}
			}
			json.Unmarshal([]byte(l), &rec)
			p.records[rec.Entity.Key]++
		}
	}
	p.mu.Unlock()
	if first && p.loseFirst {
		<-r.Context().Done() // applied, but the client never hears of it
		return
	}
	res := api.IngestResult{Seq: seq, Duplicate: dup}
	if !dup {
		res.Accepted = len(lines)
	}
	json.NewEncoder(w).Encode(res)
}

// TestSlowUplinkBatchAppliedOnce: records batches cross a slow uplink to a
// platform that applies the first attempt of each batch and loses its
// answer. The call times out (its deadline grows with the batch, so the
// slow upload itself is never cut), the runner retries the same batch under
// the same number, and every record is stored once.
func TestSlowUplinkBatchAppliedOnce(t *testing.T) {
	const rate = 512 << 10
	p, srv := newHTTPPlatform(t, true)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	base := "http://" + throttle(t, strings.TrimPrefix(srv.URL, "http://"), rate)
	client := api.NewCollectorClient(base, "col_test", key, base, &http.Client{Transport: &http.Transport{}})
	client.SetTimeouts(api.Timeouts{Call: 300 * time.Millisecond, UploadRate: rate / 2})
	j := testJob(t, client)
	j.r.cfg.RetryBackoff = time.Millisecond

	var out strings.Builder
	const n = 3000 // ~400 KiB: two batches
	for i := range n {
		fmt.Fprintf(&out, `{"entity":{"_key":"k%05d","_type":"t","_class":"C","pad":"%s"}}`+"\n", i, strings.Repeat("p", 80))
	}
	s := &recordSink{j: j}
	start := time.Now()
	if err := consumeAll(s, strings.NewReader(out.String())); err != nil {
		t.Fatalf("records over a slow uplink: %v", err)
	}
	t.Logf("%d KiB in %d batches in %v", out.Len()>>10, s.seq, time.Since(start))
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.records) != n || s.sent != n {
		t.Errorf("%d distinct records stored, %d counted sent, want %d", len(p.records), s.sent, n)
	}
	for k, times := range p.records {
		if times != 1 {
			t.Errorf("record %s stored %d times", k, times)
		}
	}
	for seq, a := range p.attempts {
		if a < 2 {
			t.Errorf("batch %d: %d attempt(s): its lost answer was not retried", seq, a)
		}
	}
	if len(p.attempts) < 2 {
		t.Errorf("%d batches: the test wants more than one", len(p.attempts))
	}
}

func TestBatchesFollowTheUplink(t *testing.T) {
	s := &recordSink{j: testJob(t, nil)}
	max := s.j.r.cfg.BatchBytes
	steps := []struct {
		n    int
		d    time.Duration
		err  error
		want int
	}{
		{0, 0, nil, initialBatchBytes},                               // before any upload
		{256 << 10, 20 * time.Second, nil, 128 << 10},                // 12.8 KiB/s: 10 s worth
		{128 << 10, time.Second, context.DeadlineExceeded, 64 << 10}, // timed out: half
		{64 << 10, time.Second, context.DeadlineExceeded, minBatchBytes},
		{64 << 10, 100 * time.Millisecond, nil, max},              // fast again: up to the bound
		{1 << 10, 50 * time.Millisecond, nil, max},                // a short last batch says little
		{max, 40 * time.Second, nil, max / 4},                     // slow
		{max / 4, 31 * time.Second, io.ErrUnexpectedEOF, max / 8}, // cut after a long attempt
	}
	for i, c := range steps {
		if c.n > 0 || c.err != nil {
			s.adapt(c.n, c.d, c.err)
		}
		if got := s.batchBytes(); got != c.want {
			t.Errorf("step %d: batch bound %d, want %d", i, got, c.want)
		}
	}
}
