package platform

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
)

// The lists of the API and the console read their filters from the same
// query parameters, through these functions, and page by the same cursors:
// a console page's URL is the API call that gives its data.

const (
	defaultListPage = 500
	maxListPage     = 1000
	// consolePage is how many rows a console list shows.
	consolePage = 50
	// maxQueryLen bounds a search term.
	maxQueryLen = 200
)

func queryString(r *http.Request, name string, max int) (string, error) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if len(v) > max {
		return "", errorf(http.StatusBadRequest, api.CodeInvalidRequest, "query parameter %s is longer than %d bytes", name, max)
	}
	return v, nil
}

// collectorFilter reads ?q= (a part of the name, or the ID), ?status=,
// ?pool=, ?after= and ?limit=.
func (s *Server) collectorFilter(r *http.Request, def int) (store.CollectorFilter, error) {
	f := store.CollectorFilter{ActiveSince: s.now().Add(-s.activeWindow())}
	var err error
	if f.Query, err = queryString(r, "q", maxQueryLen); err != nil {
		return f, err
	}
	if f.Pool, err = queryString(r, "pool", 63); err != nil {
		return f, err
	}
	if f.After, err = queryString(r, "after", 4096); err != nil {
		return f, err
	}
	switch st := r.URL.Query().Get("status"); st {
	case "", api.CollectorStatusPending, api.CollectorStatusActive, api.CollectorStatusDegraded, api.CollectorStatusOffline:
		f.Status = st
	default:
		return f, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "status %q: want pending, active, degraded or offline", st)
	}
	limit, err := queryInt(r, "limit", int64(def), 1, maxListPage)
	f.Limit = int(limit)
	return f, err
}

// collectorsPage is a page of collectors as the API shows them.
func (s *Server) collectorsPage(ctx context.Context, f store.CollectorFilter) (api.CollectorList, error) {
	cs, next, err := s.st.CollectorsPage(ctx, f)
	if err != nil {
		return api.CollectorList{}, err
	}
	out := api.CollectorList{Collectors: make([]api.Collector, 0, len(cs)), Next: next}
	for _, c := range cs {
		out.Collectors = append(out.Collectors, s.collectorView(c))
	}
	return out, nil
}

// integrationFilter reads ?q= (a part of the name or image, or the ID),
// ?collector=, ?after= and ?limit=.
func integrationFilter(r *http.Request, def int) (store.IntegrationFilter, error) {
	var f store.IntegrationFilter
	var err error
	if f.Query, err = queryString(r, "q", maxQueryLen); err != nil {
		return f, err
	}
	if f.After, err = queryString(r, "after", 4096); err != nil {
		return f, err
	}
	if f.CollectorID = r.URL.Query().Get("collector"); f.CollectorID != "" && !api.ValidCollectorID(f.CollectorID) {
		return f, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "collector %q is not a collector ID", f.CollectorID)
	}
	limit, err := queryInt(r, "limit", int64(def), 1, maxListPage)
	f.Limit = int(limit)
	return f, err
}

// integrationsPage is a page of integrations, secrets masked.
func (s *Server) integrationsPage(ctx context.Context, f store.IntegrationFilter) ([]store.Integration, api.IntegrationList, error) {
	ins, next, err := s.st.IntegrationsPage(ctx, f)
	if err != nil {
		return nil, api.IntegrationList{}, err
	}
	out := api.IntegrationList{Integrations: make([]api.Integration, 0, len(ins)), Next: next}
	for _, in := range ins {
		v, err := s.integrationView(in)
		if err != nil {
			return nil, out, err
		}
		out.Integrations = append(out.Integrations, v)
	}
	return ins, out, nil
}

// jobFilter reads ?integration=, ?collector=, ?state=, ?before= (the
// cursor: a job ID) and ?limit=.
func jobFilter(r *http.Request, def int) (queue.Filter, error) {
	q := r.URL.Query()
	f := queue.Filter{IntegrationID: q.Get("integration"), CollectorID: q.Get("collector"), Before: q.Get("before")}
	switch {
	case f.IntegrationID != "" && !api.ValidIntegrationID(f.IntegrationID):
		return f, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "integration %q is not an integration ID", f.IntegrationID)
	case f.CollectorID != "" && !api.ValidCollectorID(f.CollectorID):
		return f, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "collector %q is not a collector ID", f.CollectorID)
	case f.Before != "" && !api.ValidJobID(f.Before):
		return f, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "before %q is not a job ID", f.Before)
	}
	if st := q.Get("state"); st != "" {
		if !queue.State(st).Valid() {
			return f, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "state %q is not a job state", st)
		}
		f.States = []queue.State{queue.State(st)}
	}
	limit, err := queryInt(r, "limit", int64(def), 1, maxListPage)
	f.Limit = int(limit)
	return f, err
}

// jobsPage is a page of jobs, newest first, and the cursor of the next.
func (s *Server) jobsPage(ctx context.Context, f queue.Filter) (api.JobList, error) {
	f.Limit++ // one more says whether a next page exists
	list, err := s.jobs.Queue().List(ctx, f)
	if err != nil {
		return api.JobList{}, err
	}
	out := api.JobList{Jobs: make([]api.Job, 0, len(list))}
	if len(list) == f.Limit {
		list = list[:f.Limit-1]
		out.Next = list[len(list)-1].ID
	}
	for _, j := range list {
		out.Jobs = append(out.Jobs, s.jobs.View(ctx, j))
	}
	return out, nil
}

// auditFilter reads ?actor=, ?action=, ?target=, ?since= and ?until=
// (RFC 3339), ?before= and ?limit=.
func auditFilter(r *http.Request, def int) (store.AuditFilter, error) {
	var f store.AuditFilter
	var err error
	for _, p := range []struct {
		name string
		dst  *string
	}{{"actor", &f.Actor}, {"action", &f.Action}, {"target", &f.Target}, {"before", &f.Before}} {
		if *p.dst, err = queryString(r, p.name, maxQueryLen); err != nil {
			return f, err
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := r.URL.Query().Get(p.name)
		if v == "" {
			continue
		}
		t, err := parseTimeParam(v)
		if err != nil {
			return f, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "%s: want a time like 2026-01-02T15:04:05Z or 2026-01-02T15:04, not %q", p.name, v)
		}
		*p.dst = t
	}
	limit, err := queryInt(r, "limit", int64(def), 1, maxListPage)
	f.Limit = int(limit)
	return f, err
}

// parseTimeParam reads RFC 3339, or the value of an HTML
// datetime-local input (taken as UTC).
func parseTimeParam(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	_, err := time.Parse(time.RFC3339, v)
	return time.Time{}, err
}
