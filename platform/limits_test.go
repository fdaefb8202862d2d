package platform_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestLogChunksIdempotent: a logs chunk whose answer was lost and that the
// runner sends again is stored once (P6 item 11).
func TestLogChunksIdempotent(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap", a.ID)
	l := runAndLease(t, e, a, in.ID)
	for i := 0; i < 3; i++ {
		if err := a.Client.UploadLogs(ctx, l.JobID, l.LeaseID, 1, []byte("first chunk\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Client.UploadLogs(ctx, l.JobID, l.LeaseID, 2, []byte("second chunk\n")); err != nil {
		t.Fatal(err)
	}
	if logs, err := e.Admin.JobLogs(ctx, l.JobID); err != nil || logs != "first chunk\nsecond chunk\n" {
		t.Errorf("logs = %q, %v; want each chunk once", logs, err)
	}
}

// TestUploadsBoundedPerCollector: one collector cannot have more uploads in
// flight than its share; the extra one is told to retry (429), and what
// was in flight completes (P6 item 12).
func TestUploadsBoundedPerCollector(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) { c.Jobs.UploadsPerCollector = 1 })
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap", a.ID)
	l := runAndLease(t, e, a, in.ID)
	tok, err := a.Client.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A slow upload holds the collector's one slot while its body trickles;
	// a probe meanwhile gets 429. Which of the two reaches the slot first is
	// a race: a round where the probe won (or the slow one was refused) is
	// played again, each batch under a new number (a batch applied once
	// answers "duplicate" before it would ask for a slot).
	seq := 0
	slow := func() (*io.PipeWriter, chan int) {
		seq++
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", e.URL+jobURL(api.PathJobRecords, l.JobID), pr)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", api.ContentTypeNDJS)
		req.Header.Set(api.HeaderLease, l.LeaseID)
		req.Header.Set(api.HeaderBatchSeq, fmt.Sprint(seq))
		done := make(chan int, 1)
		go func() {
			resp, err := e.HTTP.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		pw.Write([]byte(entityLine(fmt.Sprintf("slow-%d", seq), "t") + "\n"))
		return pw, done
	}
	probe := func() int {
		seq++
		st, _ := collectorRaw(t, e, tok, "POST", jobURL(api.PathJobRecords, l.JobID),
			map[string]string{"Content-Type": api.ContentTypeNDJS, api.HeaderLease: l.LeaseID, api.HeaderBatchSeq: fmt.Sprint(seq)}, entities("b"))
		return st
	}
	refused := false
	for round := 0; round < 20 && !refused; round++ {
		pw, done := slow()
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if len(done) > 0 {
				break // the slow one was answered already (refused: the probe held the slot)
			}
			if probe() == 429 {
				refused = true
				break
			}
		}
		pw.Close()
		got := <-done
		if refused && got != 200 {
			t.Errorf("the upload in flight = %d, want 200", got)
		}
	}
	if !refused {
		t.Fatal("no upload was refused while another was in flight, in 20 rounds")
	}
	if st := probe(); st != 200 {
		t.Errorf("an upload after the slot freed = %d, want 200", st)
	}
}

// TestReportedPeakCapped: a collector reporting an absurd peak cannot make
// its integration fit nowhere: the peak is capped by the job's memory
// limit (P6 item 12).
func TestReportedPeakCapped(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap", a.ID)
	l := runAndLease(t, e, a, in.ID)
	if err := a.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, PeakMemoryBytes: 1 << 50, PeakCPUPercent: 1e12}); err != nil {
		t.Fatal(err)
	}
	got := showJob(t, e, l.JobID)
	if got.PeakMemoryBytes != e.Config.JobLimits.MemoryBytes || got.PeakCPUPercent > 100*1024 {
		t.Errorf("peaks = %d bytes, %.0f%%; want capped at the job limit %d", got.PeakMemoryBytes, got.PeakCPUPercent, e.Config.JobLimits.MemoryBytes)
	}
}

// TestEntityListingPaged: a listing is paged with a cursor and never
// returns everything at once (P6 item 12; 1.6 GB RSS before).
func TestEntityListingPaged(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap", a.ID)
	l := runAndLease(t, e, a, in.ID)
	var keys []string
	for i := 0; i < 2500; i++ {
		keys = append(keys, fmt.Sprintf("k%04d", i))
	}
	if _, err := a.Client.UploadRecords(ctx, l.JobID, l.LeaseID, 1, entities(keys...)); err != nil {
		t.Fatal(err)
	}
	first, next, err := e.Admin.ItemsPage(ctx, api.KindEntity, in.ID, "", false, "", 0)
	if err != nil || len(first) != 1000 || next == "" {
		t.Fatalf("first page = %d items, next %q, %v; want 1000 and a cursor", len(first), next, err)
	}
	all, err := e.Admin.Items(ctx, api.KindEntity, in.ID, "", false)
	if err != nil || len(all) != 2500 || all[2499].Key != "k2499" {
		t.Errorf("all pages = %d items, %v", len(all), err)
	}
	if st, code := collectorRaw(t, e, e.AdminToken, "GET", "/api/v1/integrations/"+in.ID+"/entities?limit=100000", nil, nil); st != 400 {
		t.Errorf("limit over the page maximum = %d %s, want 400", st, code)
	}
}

// TestSlowUploadGetsTimeForItsSize: a body that arrives slowly but steadily
// is read to its end (its deadline scales with its size), while one that
// trickles below the minimum rate is cut (P6 item 13). The timeouts are
// scaled down for the test: grace 1 s, 4 KiB/s.
func TestSlowUploadGetsTimeForItsSize(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) {
		c.BodyGrace, c.BodyMinRate = time.Second, 4<<10
	})
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap", a.ID)
	l := runAndLease(t, e, a, in.ID)
	tok, err := a.Client.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(seq int, body []byte, rate int) (int, error) {
		pr, pw := io.Pipe()
		go func() {
			for b := body; len(b) > 0; {
				n := min(len(b), rate/10)
				pw.Write(b[:n])
				b = b[n:]
				time.Sleep(100 * time.Millisecond)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", e.URL+jobURL(api.PathJobRecords, l.JobID), pr)
		req.ContentLength = int64(len(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", api.ContentTypeNDJS)
		req.Header.Set(api.HeaderLease, l.LeaseID)
		req.Header.Set(api.HeaderBatchSeq, fmt.Sprint(seq))
		resp, err := e.HTTP.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	// 12 KiB at 5 KiB/s: ≈ 2.4 s, over a fixed 1 s timeout, within 1 s + 12/4 s.
	var keys []string
	for i := 0; len(strings.Join(keys, "")) < 12<<10/8; i++ {
		keys = append(keys, fmt.Sprintf("key-%05d", i))
	}
	body := entities(keys...)
	if st, err := send(1, body, 5<<10); err != nil || st != 200 {
		t.Errorf("steady slow upload of %d bytes = %d, %v; want 200", len(body), st, err)
	}
	// The same size trickled at 1 KiB/s (≈ 12 s) is cut after 4 s.
	start := time.Now()
	st, err := send(2, body, 1<<10)
	if err == nil && st == 200 {
		t.Errorf("a trickling upload was read to its end (%v)", time.Since(start))
	}
	// Cut with an answer the runner retries (408), not a 4xx it gives up
	// on or a 500 that blames the platform.
	if err == nil && st != http.StatusRequestTimeout {
		t.Errorf("the trickling upload was answered %d, want 408", st)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("the trickling upload held the connection %v", took)
	}
}

// TestSilentConnectionsClosed: a connection that completes TLS (HTTP/2 or
// HTTP/1.1) and never sends a request is closed after HeaderTimeout, not
// kept for the idle timeout (P6 item 13).
func TestSilentConnectionsClosed(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) { c.HeaderTimeout = 500 * time.Millisecond })
	for _, proto := range []string{"h2", "http/1.1"} {
		t.Run(proto, func(t *testing.T) {
			tc := e.HTTP.Transport.(*http.Transport).TLSClientConfig.Clone()
			tc.NextProtos = []string{proto}
			conn, err := tls.Dial("tcp", e.Config.Listen, tc)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().NegotiatedProtocol; got != proto && !(proto == "http/1.1" && got == "") {
				t.Fatalf("negotiated %q, want %q", got, proto)
			}
			if proto == "h2" {
				conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			_, err = io.Copy(io.Discard, conn)
			if took := time.Since(start); err != nil || took > 3*time.Second {
				t.Errorf("silent %s connection open for %v (err %v); want closed after ~500ms", proto, took, err)
			}
		})
	}
	// A connection that sends a request is not cut by it.
	if st, _ := e.Raw(t, "GET", api.PathHealthz, "", "", nil); st != 200 {
		t.Errorf("healthz = %d", st)
	}
}

// TestEnrollWithoutPolicyKeepsToken is P6 item 14: a platform without an
// image policy refuses enrollment before burning the token, with the
// reason; once it has one, the same token works.
func TestEnrollWithoutPolicyKeepsToken(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) { c.ImagePolicy = nil })
	g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	err = enrollWith(e, t, g.Collector.ID, g.EnrollmentToken)
	wantAPIError(t, err, 503, api.CodeNoImagePolicy)
	e.Config.ImagePolicy = []byte(`{"default":[{"type":"reject"}]}`)
	e2 := e.Restart(t)
	if err := enrollWith(e2, t, g.Collector.ID, g.EnrollmentToken); err != nil {
		t.Errorf("the same token after the policy was set: %v", err)
	}
}

// TestPurgeAndRetention is P6 item 16: deleting with purge removes the
// integration's data, jobs and logs in the background; finished jobs past
// retention go with their logs. (The admin token it also asked to rotate
// became per-user API tokens, revocable: access_test.go.)
func TestPurgeAndRetention(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) {
		c.JobRetention, c.HousekeepingInterval = 24*time.Hour, 50*time.Millisecond
	})
	a := e.EnrollNew(t, "a")
	gone := newJobIntegration(t, e, "gone", a.ID)
	l := runAndLease(t, e, a, gone.ID)
	if _, err := a.Client.UploadRecords(ctx, l.JobID, l.LeaseID, 1, entities("x", "y")); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID}); err != nil {
		t.Fatal(err)
	}
	if err := e.Admin.PurgeIntegration(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "purge", 5*time.Second, func() bool {
		_, err := e.Admin.Job(ctx, l.JobID)
		return api.StatusOf(err) == 404
	})
	if n := count(t, e, `SELECT count(*) FROM data_entities WHERE integration_id = ?`, gone.ID); n != 0 {
		t.Errorf("%d entities of the purged integration left", n)
	}

	kept := newJobIntegration(t, e, "kept", a.ID)
	l2 := runAndLease(t, e, a, kept.ID)
	if err := a.Client.UploadLogs(ctx, l2.JobID, l2.LeaseID, 1, []byte("old run\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Finish(ctx, l2.JobID, api.FinishRequest{LeaseID: l2.LeaseID}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(25 * time.Hour)
	waitUntil(t, "retention", 5*time.Second, func() bool {
		_, err := e.Admin.Job(ctx, l2.JobID)
		return api.StatusOf(err) == 404
	})
	if n := count(t, e, `SELECT count(*) FROM data_job_logs WHERE job_id = ?`, l2.JobID); n != 0 {
		t.Errorf("logs of a pruned job left: %d", n)
	}
	if n := count(t, e, `SELECT count(*) FROM data_entities WHERE integration_id = ?`, kept.ID); n != 0 {
		t.Logf("kept integration's entities: %d (data is not subject to job retention)", n)
	}

}

func count(t *testing.T, e *platformtest.Env, query string, args ...any) int {
	t.Helper()
	var n int
	if err := openRaw(t, e).QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitUntil(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("%s: not done within %v", what, d)
}
