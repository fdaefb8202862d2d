package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/collectorhq/collector/crypto"
)

// Paths of the collector's job endpoints. {id} is a job ID; the collector
// is always the one the access token names.
const (
	PathJobsNext    = "/api/v1/collector/jobs/next"
	PathJobRenew    = "/api/v1/collector/jobs/{id}/renew"
	PathJobRunning  = "/api/v1/collector/jobs/{id}/running"
	PathJobRecords  = "/api/v1/collector/jobs/{id}/records"
	PathJobLogs     = "/api/v1/collector/jobs/{id}/logs"
	PathJobFinish   = "/api/v1/collector/jobs/{id}/finish"
	HeaderLease     = "Collector-Lease"     // the lease ID, on records and logs uploads
	HeaderBatchSeq  = "Collector-Batch-Seq" // a records batch's sequence number, from 1
	HeaderLogSeq    = "Collector-Log-Seq"   // a logs chunk's sequence number, from 1
	ContentTypeNDJS = "application/x-ndjson"
	// MaxLongPoll is the longest a next call waits for a job.
	MaxLongPoll = 25 * time.Second
	// MaxLogBytes bounds one logs upload.
	MaxLogBytes = 1 << 20
)

// Job states, as the queue keeps them.
const (
	JobQueued    = "queued"
	JobLeased    = "leased"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCanceled  = "canceled"
	JobDead      = "dead"
)

// NextRequest asks for a job: the collector's free memory (0 = unknown)
// and how long to wait for one (capped at MaxLongPoll).
type NextRequest struct {
	FreeMemoryBytes int64 `json:"free_memory_bytes"`
	WaitSeconds     int   `json:"wait_seconds"`
}

// Lease is a job handed to a collector: the sealed, signed envelope and the
// lease that must accompany every later call about it.
type Lease struct {
	JobID          string    `json:"job_id"`
	LeaseID        string    `json:"lease_id"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
	LeaseTTLSec    int       `json:"lease_ttl_sec"`
	Attempt        int       `json:"attempt"`
	Envelope       []byte    `json:"envelope"` // crypto.SealEnvelope output, base64 on the wire
	// PlatformKeys, during a rotation of the platform's envelope-signing
	// key, states the keys the collector is to accept, signed by keys it
	// already accepts (docs/auth.md §8).
	PlatformKeys *crypto.SignedKeySet `json:"platform_keys,omitempty"`
}

// LeaseRequest names the lease a call is made under.
type LeaseRequest struct {
	LeaseID string `json:"lease_id"`
}

// RenewResponse is the lease's new expiry.
type RenewResponse struct {
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
}

// LineError is one refused record line.
type LineError struct {
	Line   int    `json:"line"` // 1-based, within the batch
	Reason string `json:"reason"`
}

// IngestResult answers a records batch.
type IngestResult struct {
	Seq      int         `json:"seq"`
	Accepted int         `json:"accepted"`
	Refused  int         `json:"refused"`
	Errors   []LineError `json:"errors,omitempty"` // the first few refusals
	// Duplicate: the batch had been applied before and nothing changed;
	// Accepted and Refused are then what it counted the first time.
	Duplicate bool `json:"duplicate"`
}

// FinishRequest reports how a job ended.
type FinishRequest struct {
	LeaseID         string  `json:"lease_id"`
	ExitCode        int     `json:"exit_code"`
	Error           string  `json:"error,omitempty"`
	PeakMemoryBytes int64   `json:"peak_memory_bytes"`
	PeakCPUPercent  float64 `json:"peak_cpu_percent"`
	Batches         int     `json:"batches"`
	Records         int64   `json:"records"`
	RefusedRecords  int64   `json:"refused_records"`
	// OOMKilled: the engine killed the job's container at its memory
	// limit (exit 137). The next prediction of the integration's memory is
	// its limit.
	OOMKilled bool `json:"oom_killed,omitempty"`
	// Validation is a validation job's result, as the integration wrote it
	// (nil when it wrote none: the validation failed).
	Validation *Validation `json:"validation,omitempty"`
}

// JobModeValidate is the mode of a validation job: the integration
// connects to its target and checks its access, and ingests nothing.
const JobModeValidate = "validate"

// Validation is a validation's result.
type Validation struct {
	OK bool `json:"ok"`
	// Reason names the failure ("auth", "certificate", "unreachable", ...).
	Reason string `json:"reason,omitempty"`
	// Error is the failure, as the integration said it.
	Error  string            `json:"error,omitempty"`
	Checks []ValidationCheck `json:"checks,omitempty"`
}

// ValidationCheck is one check a validation passed.
type ValidationCheck struct {
	Name   string `json:"name"`
	Detail string `json:"detail,omitempty"`
}

// Job is a job as the admin API shows it.
type Job struct {
	ID            string `json:"id"`
	IntegrationID string `json:"integration_id"`
	CollectorID   string `json:"collector_id"`
	// Pool is the pool the job is queued in (CollectorID is then the
	// member that leased it, or empty while it waits).
	Pool            string     `json:"pool,omitempty"`
	State           string     `json:"state"`
	Attempt         int        `json:"attempt"`
	MaxAttempts     int        `json:"max_attempts"`
	RequestedBy     string     `json:"requested_by"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	ExitCode        *int       `json:"exit_code,omitempty"`
	Error           string     `json:"error,omitempty"`
	PeakMemoryBytes int64      `json:"peak_memory_bytes,omitempty"`
	PeakCPUPercent  float64    `json:"peak_cpu_percent,omitempty"`
	Records         int64      `json:"records"`
	// RefusedRecords counts the output lines refused, by the runner (which
	// never sends them) and by the platform. A run with any refused line
	// fails: it is not a complete sync.
	RefusedRecords int64 `json:"refused_records"`
	// DanglingRelationships counts, after a successful run, the
	// integration's relationships whose _fromEntityKey or _toEntityKey is
	// not one of its live entities. They are kept, and flagged.
	DanglingRelationships int64 `json:"dangling_relationships,omitempty"`
	// Waiting says why a queued job has not been leased, when nothing it
	// may run on has room for it (shown by jobs show, not in lists).
	Waiting string `json:"waiting,omitempty"`
	// Mode is JobModeValidate for a validation ("" for a collection).
	Mode string `json:"mode,omitempty"`
	// Validation is a finished validation's result.
	Validation *Validation `json:"validation,omitempty"`
}

// JobList is a page of jobs.
type JobList struct {
	Jobs []Job `json:"jobs"`
	// Next is the cursor of the next page (?before=), "" on the last.
	Next string `json:"next,omitempty"`
}

func jobPath(pattern, id string) string {
	return string(bytes.Replace([]byte(pattern), []byte("{id}"), []byte(id), 1))
}

// Next long-polls for a job; it returns nil, nil when none came in time.
func (c *CollectorClient) Next(ctx context.Context, req NextRequest) (*Lease, error) {
	var out Lease
	wait := time.Duration(req.WaitSeconds) * time.Second
	status, err := c.doStatus(ctx, http.MethodPost, PathJobsNext, wait, req, &out)
	if err != nil {
		return nil, fmt.Errorf("next job: %w", err)
	}
	if status == http.StatusNoContent {
		return nil, nil
	}
	return &out, nil
}

// Renew extends a lease.
func (c *CollectorClient) Renew(ctx context.Context, jobID, leaseID string) (*RenewResponse, error) {
	var out RenewResponse
	if err := c.Do(ctx, http.MethodPost, jobPath(PathJobRenew, jobID), LeaseRequest{LeaseID: leaseID}, &out); err != nil {
		return nil, fmt.Errorf("renew lease of job %s: %w", jobID, err)
	}
	return &out, nil
}

// MarkRunning says the job's container started.
func (c *CollectorClient) MarkRunning(ctx context.Context, jobID, leaseID string) error {
	if err := c.Do(ctx, http.MethodPost, jobPath(PathJobRunning, jobID), LeaseRequest{LeaseID: leaseID}, nil); err != nil {
		return fmt.Errorf("mark job %s running: %w", jobID, err)
	}
	return nil
}

// UploadRecords posts one NDJSON batch with its sequence number; a retried
// batch is applied once.
func (c *CollectorClient) UploadRecords(ctx context.Context, jobID, leaseID string, seq int, ndjson []byte) (*IngestResult, error) {
	var out IngestResult
	h := http.Header{HeaderLease: {leaseID}, HeaderBatchSeq: {strconv.Itoa(seq)}, "Content-Type": {ContentTypeNDJS}}
	if err := c.doRaw(ctx, jobPath(PathJobRecords, jobID), h, ndjson, &out); err != nil {
		return nil, fmt.Errorf("upload records batch %d of job %s: %w", seq, jobID, err)
	}
	return &out, nil
}

// UploadLogs appends (already redacted) log text to the job's logs. seq
// numbers the chunks of one run from 1: a retried chunk (same job, lease
// and seq) is stored once.
func (c *CollectorClient) UploadLogs(ctx context.Context, jobID, leaseID string, seq int, text []byte) error {
	h := http.Header{HeaderLease: {leaseID}, HeaderLogSeq: {strconv.Itoa(seq)}, "Content-Type": {"text/plain; charset=utf-8"}}
	if err := c.doRaw(ctx, jobPath(PathJobLogs, jobID), h, text, nil); err != nil {
		return fmt.Errorf("upload logs of job %s: %w", jobID, err)
	}
	return nil
}

// Finish reports the end of a job.
func (c *CollectorClient) Finish(ctx context.Context, jobID string, req FinishRequest) error {
	if err := c.Do(ctx, http.MethodPost, jobPath(PathJobFinish, jobID), req, nil); err != nil {
		return fmt.Errorf("finish job %s: %w", jobID, err)
	}
	return nil
}

// doStatus is Do that also returns the status (to tell 200 from 204), for
// a call whose answer may take wait to start.
func (c *CollectorClient) doStatus(ctx context.Context, method, path string, wait time.Duration, in, out any) (int, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	var status int
	err = c.withAccess(ctx, func(tok string) error {
		var err error
		status, err = c.t.send(ctx, method, path, tok, http.Header{"Content-Type": {"application/json"}}, b, wait, out)
		return err
	})
	return status, err
}

// doRaw posts a non-JSON body with the access token.
func (c *CollectorClient) doRaw(ctx context.Context, path string, h http.Header, body []byte, out any) error {
	return c.withAccess(ctx, func(tok string) error {
		_, err := c.t.send(ctx, http.MethodPost, path, tok, h, body, 0, out)
		return err
	})
}

// send posts body with headers h and decodes a 2xx JSON answer into out,
// within the deadline of a body that size whose answer may take wait.
// rewindable is a request body that can be sought back to its start. The
// collector's client retries through go-retryablehttp, which replays a
// body it can seek and reads any other into a fresh copy first, for every
// call: a 4 MiB records batch copied, in growing steps, on each upload.
type rewindable struct{ *bytes.Reader }

func (rewindable) Close() error { return nil }

func (t transport) send(ctx context.Context, method, path, bearer string, h http.Header, body []byte, wait time.Duration, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeouts.For(len(body), wait))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, nil)
	if err != nil {
		return 0, err
	}
	if len(body) > 0 {
		req.Body, req.ContentLength = rewindable{bytes.NewReader(body)}, int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return rewindable{bytes.NewReader(body)}, nil }
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := t.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	lr := io.LimitReader(resp.Body, maxResponseBytes)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, responseError(resp.StatusCode, lr)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, lr)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return resp.StatusCode, nil
}
