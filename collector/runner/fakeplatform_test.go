package runner_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/collectorhq/collector/api"
)

// fakePlatform is the platform's job API in memory: it hands out queued
// leases, records what the runner sends, and fails calls as a test asks.
type fakePlatform struct {
	mu       sync.Mutex
	queue    []*api.Lease
	records  map[string][]string // job → lines, by batch order
	seqs     map[string][]int
	logs     map[string]*bytes.Buffer
	finished map[string]api.FinishRequest
	running  map[string]bool
	nexts    int      // Next calls so far
	calls    []string // "OP JOB LEASE" for every call about a job
	// renewErr and recordsErr, when set, fail those calls.
	renewErr   func(jobID, leaseID string) error
	recordsErr func(jobID, leaseID string, seq int) error
	done       chan string
}

func newFakePlatform() *fakePlatform {
	return &fakePlatform{records: map[string][]string{}, seqs: map[string][]int{}, logs: map[string]*bytes.Buffer{},
		finished: map[string]api.FinishRequest{}, running: map[string]bool{}, done: make(chan string, 16)}
}

// call records a call; with f.mu held.
func (f *fakePlatform) call(op, jobID, leaseID string) {
	f.calls = append(f.calls, fmt.Sprint(op, " ", jobID, " ", leaseID))
}

// called reports whether a call "OP JOB LEASE" was made (a blank part
// matches anything).
func (f *fakePlatform) called(op, jobID, leaseID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.calls, func(c string) bool {
		p := strings.Fields(c)
		return (op == "" || p[0] == op) && (jobID == "" || p[1] == jobID) && (leaseID == "" || p[2] == leaseID)
	})
}

// callLog returns the calls so far.
func (f *fakePlatform) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// push queues a lease for the runner's next Next.
func (f *fakePlatform) push(l *api.Lease) {
	f.mu.Lock()
	f.queue = append(f.queue, l)
	f.mu.Unlock()
}

func (f *fakePlatform) Next(ctx context.Context, req api.NextRequest) (*api.Lease, error) {
	f.mu.Lock()
	f.nexts++
	if len(f.queue) > 0 {
		l := f.queue[0]
		f.queue = f.queue[1:]
		f.mu.Unlock()
		return l, nil
	}
	f.mu.Unlock()
	t := time.NewTimer(20 * time.Millisecond) // a short long poll
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return nil, nil
}

func (f *fakePlatform) Renew(ctx context.Context, jobID, leaseID string) (*api.RenewResponse, error) {
	f.mu.Lock()
	f.call("renew", jobID, leaseID)
	hook := f.renewErr
	f.mu.Unlock()
	if hook != nil {
		if err := hook(jobID, leaseID); err != nil {
			return nil, err
		}
	}
	return &api.RenewResponse{LeaseExpiresAt: time.Now().Add(time.Minute)}, nil
}

func (f *fakePlatform) MarkRunning(ctx context.Context, jobID, leaseID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("running", jobID, leaseID)
	f.running[jobID] = true
	return nil
}

func (f *fakePlatform) UploadRecords(ctx context.Context, jobID, leaseID string, seq int, ndjson []byte) (*api.IngestResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("records", jobID, leaseID)
	if f.recordsErr != nil {
		if err := f.recordsErr(jobID, leaseID, seq); err != nil {
			return nil, err
		}
	}
	lines := strings.Split(strings.TrimSpace(string(ndjson)), "\n")
	f.records[jobID] = append(f.records[jobID], lines...)
	f.seqs[jobID] = append(f.seqs[jobID], seq)
	return &api.IngestResult{Seq: seq, Accepted: len(lines)}, nil
}

func (f *fakePlatform) UploadLogs(ctx context.Context, jobID, leaseID string, seq int, text []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("logs", jobID, leaseID)
	if f.logs[jobID] == nil {
		f.logs[jobID] = &bytes.Buffer{}
	}
	f.logs[jobID].Write(text)
	return nil
}

func (f *fakePlatform) Finish(ctx context.Context, jobID string, req api.FinishRequest) error {
	f.mu.Lock()
	f.call("finish", jobID, req.LeaseID)
	f.finished[jobID] = req
	f.mu.Unlock()
	f.done <- jobID
	return nil
}
