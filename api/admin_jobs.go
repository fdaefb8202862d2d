package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Admin paths of the job pipeline.
const (
	PathJobs = "/api/v1/jobs"
	// PathIntegrationRun is "run now" for an integration: POST {PathIntegrations}/{id}/run.
	PathIntegrationRun = "/run"
	// PathIntegrationValidate queues a validation of an integration:
	// POST {PathIntegrations}/{id}/validate.
	PathIntegrationValidate = "/validate"
)

// ItemList is a page of stored entities or relationships.
type ItemList struct {
	Entities      []Item `json:"entities,omitempty"`
	Relationships []Item `json:"relationships,omitempty"`
	// Next is the cursor of the next page (?after=), empty on the last.
	Next string `json:"next,omitempty"`
}

// Item is a stored entity or relationship, as the admin API shows it.
type Item struct {
	Key        string          `json:"_key"`
	Type       string          `json:"_type"`
	Class      string          `json:"_class"`
	From       string          `json:"_fromEntityKey,omitempty"`
	To         string          `json:"_toEntityKey,omitempty"`
	Properties json.RawMessage `json:"properties"` // the record's object, as sent
	JobID      string          `json:"last_job_id"`
	UpdatedAt  time.Time       `json:"updated_at"`
	DeletedAt  *time.Time      `json:"deleted_at,omitempty"`
}

// RunIntegration enqueues a job for the integration now; an integration
// with a job queued or in flight gets that job back.
func (c *AdminClient) RunIntegration(ctx context.Context, id string) (*Job, error) {
	var out Job
	return &out, c.do(ctx, http.MethodPost, PathIntegrations+"/"+url.PathEscape(id)+PathIntegrationRun, nil, &out)
}

// ValidateIntegration queues a validation of the integration's config on
// its collector or pool (the one queued or in flight, if any, comes back).
func (c *AdminClient) ValidateIntegration(ctx context.Context, id string) (*Job, error) {
	var out Job
	return &out, c.do(ctx, http.MethodPost, PathIntegrations+"/"+url.PathEscape(id)+PathIntegrationValidate, nil, &out)
}

// JobFilter selects jobs.
type JobFilter struct {
	IntegrationID, CollectorID, State string
	// Before is the cursor of the previous page (its Next).
	Before string
	Limit  int
}

// Jobs lists jobs, newest first.
func (c *AdminClient) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q := url.Values{}
	for k, v := range map[string]string{"integration": f.IntegrationID, "collector": f.CollectorID, "state": f.State, "before": f.Before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out JobList
	return out.Jobs, c.do(ctx, http.MethodGet, PathJobs+"?"+q.Encode(), nil, &out)
}

// Job shows one job.
func (c *AdminClient) Job(ctx context.Context, id string) (*Job, error) {
	var out Job
	return &out, c.do(ctx, http.MethodGet, PathJobs+"/"+url.PathEscape(id), nil, &out)
}

// CancelJob cancels a queued or running job.
func (c *AdminClient) CancelJob(ctx context.Context, id string) (*Job, error) {
	var out Job
	return &out, c.do(ctx, http.MethodPost, PathJobs+"/"+url.PathEscape(id)+"/cancel", nil, &out)
}

// JobLogs returns a job's (redacted) logs.
func (c *AdminClient) JobLogs(ctx context.Context, id string) (string, error) {
	b, err := c.t.getRaw(ctx, PathJobs+"/"+url.PathEscape(id)+"/logs", c.token)
	return string(b), err
}

// Items lists all of an integration's entities (kind "entity") or
// relationships, page after page: for small integrations and tests; use
// ItemsPage to walk a large one.
func (c *AdminClient) Items(ctx context.Context, kind, integrationID, typ string, deleted bool) ([]Item, error) {
	var all []Item
	after := ""
	for {
		items, next, err := c.ItemsPage(ctx, kind, integrationID, typ, deleted, after, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		after = next
	}
}

// ItemsPage returns one page of items after the cursor after ("" from the
// start), at most limit (0: the platform's default), and the next cursor
// ("" on the last page).
func (c *AdminClient) ItemsPage(ctx context.Context, kind, integrationID, typ string, deleted bool, after string, limit int) ([]Item, string, error) {
	path := "/entities"
	if kind == KindRelationship {
		path = "/relationships"
	}
	q := url.Values{}
	if typ != "" {
		q.Set("type", typ)
	}
	if deleted {
		q.Set("deleted", "true")
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out ItemList
	if err := c.do(ctx, http.MethodGet, PathIntegrations+"/"+url.PathEscape(integrationID)+path+"?"+q.Encode(), nil, &out); err != nil {
		return nil, "", err
	}
	if kind == KindRelationship {
		return out.Relationships, out.Next, nil
	}
	return out.Entities, out.Next, nil
}

// getRaw GETs a non-JSON body.
func (t transport) getRaw(ctx context.Context, path, bearer string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := t.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	lr := io.LimitReader(resp.Body, maxResponseBytes)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, responseError(resp.StatusCode, lr)
	}
	return io.ReadAll(lr)
}
