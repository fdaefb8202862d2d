package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// AdminClient calls the admin API with the admin token.
type AdminClient struct {
	t     transport
	token string
}

// NewAdminClient returns a client for the platform at baseURL.
func NewAdminClient(baseURL, adminToken string, hc *http.Client) *AdminClient {
	return &AdminClient{t: newTransport(baseURL, hc), token: adminToken}
}

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	return c.t.do(ctx, method, path, c.token, in, out)
}

// CreateCollector creates a collector and returns its first enrollment token.
func (c *AdminClient) CreateCollector(ctx context.Context, req CreateCollectorRequest) (*EnrollmentGrant, error) {
	var out EnrollmentGrant
	return &out, c.do(ctx, http.MethodPost, PathCollectors, req, &out)
}

// Collectors lists every collector, page after page.
func (c *AdminClient) Collectors(ctx context.Context) ([]Collector, error) {
	var all []Collector
	for after := ""; ; {
		var out CollectorList
		if err := c.do(ctx, http.MethodGet, PathCollectors+"?"+url.Values{"after": {after}}.Encode(), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Collectors...)
		if out.Next == "" {
			return all, nil
		}
		after = out.Next
	}
}

// Collector shows one collector.
func (c *AdminClient) Collector(ctx context.Context, id string) (*Collector, error) {
	var out Collector
	return &out, c.do(ctx, http.MethodGet, PathCollectors+"/"+url.PathEscape(id), nil, &out)
}

// Heartbeats returns a collector's recent heartbeats, newest first.
func (c *AdminClient) Heartbeats(ctx context.Context, id string) ([]Heartbeat, error) {
	var out HeartbeatList
	return out.Heartbeats, c.do(ctx, http.MethodGet, PathCollectors+"/"+url.PathEscape(id)+"/heartbeats", nil, &out)
}

// DeleteCollector deletes a collector and revokes its credentials.
func (c *AdminClient) DeleteCollector(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, PathCollectors+"/"+url.PathEscape(id), nil, nil)
}

// NewEnrollmentToken issues a new enrollment token; the old one dies.
func (c *AdminClient) NewEnrollmentToken(ctx context.Context, id string) (*EnrollmentGrant, error) {
	var out EnrollmentGrant
	return &out, c.do(ctx, http.MethodPost, PathCollectors+"/"+url.PathEscape(id)+"/token", nil, &out)
}

// CreateIntegration creates an integration.
func (c *AdminClient) CreateIntegration(ctx context.Context, req IntegrationRequest) (*Integration, error) {
	var out Integration
	return &out, c.do(ctx, http.MethodPost, PathIntegrations, req, &out)
}

// Integrations lists every integration, secrets masked, page after page.
func (c *AdminClient) Integrations(ctx context.Context) ([]Integration, error) {
	var all []Integration
	for after := ""; ; {
		var out IntegrationList
		if err := c.do(ctx, http.MethodGet, PathIntegrations+"?"+url.Values{"after": {after}}.Encode(), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Integrations...)
		if out.Next == "" {
			return all, nil
		}
		after = out.Next
	}
}

// Integration shows one integration, secrets masked.
func (c *AdminClient) Integration(ctx context.Context, id string) (*Integration, error) {
	var out Integration
	return &out, c.do(ctx, http.MethodGet, PathIntegrations+"/"+url.PathEscape(id), nil, &out)
}

// UpdateIntegration changes the fields req carries.
func (c *AdminClient) UpdateIntegration(ctx context.Context, id string, req IntegrationUpdate) (*Integration, error) {
	var out Integration
	return &out, c.do(ctx, http.MethodPatch, PathIntegrations+"/"+url.PathEscape(id), req, &out)
}

// AssignIntegration moves an integration to another collector.
func (c *AdminClient) AssignIntegration(ctx context.Context, id, collectorID string) (*Integration, error) {
	return c.AssignIntegrationTo(ctx, id, AssignRequest{CollectorID: collectorID})
}

// AssignIntegrationTo moves an integration to a collector or a pool.
func (c *AdminClient) AssignIntegrationTo(ctx context.Context, id string, to AssignRequest) (*Integration, error) {
	var out Integration
	return &out, c.do(ctx, http.MethodPost, PathIntegrations+"/"+url.PathEscape(id)+"/assign", to, &out)
}

// SetCollectorPool moves a collector into a pool ("" takes it out).
func (c *AdminClient) SetCollectorPool(ctx context.Context, id, pool string) (*Collector, error) {
	var out Collector
	return &out, c.do(ctx, http.MethodPut, PathCollectors+"/"+url.PathEscape(id)+"/pool", SetPoolRequest{Pool: pool}, &out)
}

// DeleteIntegration deletes an integration and cancels its jobs; its
// collected data and job history stay.
func (c *AdminClient) DeleteIntegration(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, PathIntegrations+"/"+url.PathEscape(id), nil, nil)
}

// PurgeIntegration deletes an integration with its entities,
// relationships, jobs and job logs (removed in the background).
func (c *AdminClient) PurgeIntegration(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, PathIntegrations+"/"+url.PathEscape(id)+"?purge=true", nil, nil)
}

// Audit returns up to limit audit entries after seq after (0: from the start).
func (c *AdminClient) Audit(ctx context.Context, after int64, limit int) (*AuditList, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatInt(after, 10))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out AuditList
	return &out, c.do(ctx, http.MethodGet, PathAudit+"?"+q.Encode(), nil, &out)
}

// VerifyAudit asks the platform to walk the audit chain (and check it
// against the head the platform saved outside its database).
func (c *AdminClient) VerifyAudit(ctx context.Context) (*AuditVerification, error) {
	return c.VerifyAuditAgainst(ctx, "")
}

// VerifyAuditAgainst is VerifyAudit that also checks the chain still holds
// a head saved earlier ("SEQ:HASH", as a verification prints it; "" for
// none).
func (c *AdminClient) VerifyAuditAgainst(ctx context.Context, checkpoint string) (*AuditVerification, error) {
	path := PathAuditVerify
	if checkpoint != "" {
		path += "?expect=" + url.QueryEscape(checkpoint)
	}
	var out AuditVerification
	return &out, c.do(ctx, http.MethodGet, path, nil, &out)
}
