package platform

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
)

// Jobs.

type jobsData struct {
	State, Integration, Collector    string
	IntegrationName, CollectorName   string
	States                           []string
	Jobs                             []api.Job
	Next                             string
	IntegrationNames, CollectorNames map[string]string
}

var jobStates = []string{"", "queued", "leased", "running", "succeeded", "failed", "canceled", "dead"}

func (s *Server) jobsListPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	f, err := jobFilter(r, consolePage)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	ctx := r.Context()
	l, err := s.jobsPage(ctx, f)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d := jobsData{Integration: f.IntegrationID, Collector: f.CollectorID, States: jobStates, Jobs: l.Jobs, Next: l.Next,
		IntegrationNames: map[string]string{}, CollectorNames: map[string]string{}}
	if len(f.States) == 1 {
		d.State = string(f.States[0])
	}
	for _, j := range l.Jobs {
		s.collectorName(ctx, j.CollectorID, d.CollectorNames)
		if _, ok := d.IntegrationNames[j.IntegrationID]; !ok {
			if in, err := s.st.Integration(ctx, j.IntegrationID); err == nil {
				d.IntegrationNames[j.IntegrationID] = in.Name
			} else {
				d.IntegrationNames[j.IntegrationID] = ""
			}
		}
	}
	d.IntegrationName, d.CollectorName = d.IntegrationNames[f.IntegrationID], s.collectorName(ctx, f.CollectorID, d.CollectorNames)
	if f.IntegrationID != "" && d.IntegrationName == "" {
		if in, err := s.st.Integration(ctx, f.IntegrationID); err == nil {
			d.IntegrationName = in.Name
		}
	}
	s.page(w, r, p, http.StatusOK, "jobs", "Jobs", d)
}

// step is one stage of a job's timeline.
type step struct {
	Name string
	At   any // time.Time or *time.Time
	Done bool
}

type jobDetail struct {
	Job                            api.Job
	IntegrationName, CollectorName string
	Timeline                       []step
	Logs                           string
	LogCursor                      int64
	Active                         bool
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	id := r.PathValue("id")
	if !api.ValidJobID(id) {
		s.pageError(w, r, p, errorf(http.StatusNotFound, api.CodeNotFound, "job %q not found", id))
		return
	}
	ctx := r.Context()
	j, err := s.jobs.Queue().Get(ctx, id)
	if err != nil {
		s.pageError(w, r, p, jobError(err))
		return
	}
	v := s.jobs.View(ctx, j)
	v.Waiting = s.waiting(ctx, j)
	d := jobDetail{Job: v, CollectorName: s.collectorName(ctx, j.CollectorID, map[string]string{}),
		Active: j.State == queue.StateQueued || j.State == queue.StateLeased || j.State == queue.StateRunning}
	if in, err := s.st.Integration(ctx, j.IntegrationID); err == nil {
		d.IntegrationName = in.Name
	}
	leased := j.State != queue.StateQueued && (j.LeaseID != "" || !j.StartedAt.IsZero())
	d.Timeline = []step{
		{Name: "queued", At: j.CreatedAt, Done: true},
		{Name: "leased", Done: leased},
		{Name: "running", At: v.StartedAt, Done: v.StartedAt != nil},
		{Name: outcome(j.State), At: v.FinishedAt, Done: v.FinishedAt != nil},
	}
	if d.Logs, d.LogCursor, err = s.jobs.RecordStore().LogsAfter(ctx, id, 0); err != nil {
		s.pageError(w, r, p, err)
		return
	}
	var scripts []string
	if d.Active {
		scripts = []string{"joblog.js"}
	}
	s.page(w, r, p, http.StatusOK, "job", "Job "+id, d, scripts...)
}

// outcome names a timeline's last step.
func outcome(st queue.State) string {
	switch st {
	case queue.StateQueued, queue.StateLeased, queue.StateRunning:
		return "outcome"
	}
	return string(st)
}

// cancelPage confirms a cancel: the job's container is stopped and its
// records so far stay.
func (s *Server) cancelPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	id := r.PathValue("id")
	j, err := s.jobs.Queue().Get(r.Context(), id)
	if err != nil {
		s.pageError(w, r, p, jobError(err))
		return
	}
	d := confirmData{Title: "Cancel job " + j.ID, Action: "/jobs/" + j.ID + "/cancel", Button: "Cancel the job", Back: "/jobs/" + j.ID,
		Question: "The collector stops the job's container; what it sent so far stays, and the next scheduled run starts afresh."}
	s.page(w, r, p, http.StatusOK, "confirm", d.Title, d)
}

func (s *Server) cancelSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	id := r.PathValue("id")
	if _, err := s.CancelJobAct(r, id); err != nil {
		s.pageError(w, r, p, err)
		return
	}
	seeOther(w, r, "/jobs/"+id)
}

// Data.

type dataData struct {
	Integrations               []option
	Integration, Kind, Type, Q string
	Items                      []itemRow
	Next                       string
}

type itemRow struct {
	api.Item
	Summary string
}

// summary is a short, one-line rendering of an item's properties.
func summary(raw json.RawMessage) string {
	const max = 160
	s := string(raw)
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func (s *Server) integrationOptions(r *http.Request) ([]option, error) {
	ins, _, err := s.st.IntegrationsPage(r.Context(), store.IntegrationFilter{Limit: maxListPage})
	if err != nil {
		return nil, err
	}
	out := make([]option, 0, len(ins))
	for _, in := range ins {
		out = append(out, option{Value: in.ID, Label: in.Name})
	}
	return out, nil
}

// dataPage lists an integration's entities or relationships, by key,
// with a key-prefix search (an index range: fast at any size).
func (s *Server) dataPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	q := r.URL.Query()
	d := dataData{Integration: q.Get("integration"), Kind: q.Get("kind"), Type: strings.TrimSpace(q.Get("type")), Q: strings.TrimSpace(q.Get("q"))}
	var err error
	if d.Integrations, err = s.integrationOptions(r); err != nil {
		s.pageError(w, r, p, err)
		return
	}
	if d.Kind == "" {
		d.Kind = api.KindEntity
	}
	switch {
	case d.Kind != api.KindEntity && d.Kind != api.KindRelationship:
		err = errorf(http.StatusBadRequest, api.CodeInvalidRequest, "kind must be %s or %s", api.KindEntity, api.KindRelationship)
	case d.Integration == "" && len(d.Integrations) > 0:
		d.Integration = d.Integrations[0].Value
	case d.Integration != "" && !api.ValidIntegrationID(d.Integration):
		err = errorf(http.StatusBadRequest, api.CodeInvalidRequest, "integration %q is not an integration ID", d.Integration)
	case len(d.Q) > maxQueryLen || len(d.Type) > maxQueryLen:
		err = errorf(http.StatusBadRequest, api.CodeInvalidRequest, "a search is at most %d bytes", maxQueryLen)
	}
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	if d.Integration != "" {
		page, err := s.jobs.RecordStore().List(r.Context(), d.Kind, jobs.ListFilter{IntegrationID: d.Integration, Type: d.Type,
			KeyPrefix: d.Q, After: q.Get("after"), Limit: consolePage})
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		for _, it := range page.Items {
			d.Items = append(d.Items, itemRow{Item: it, Summary: summary(it.Properties)})
		}
		d.Next = page.Next
	}
	s.page(w, r, p, http.StatusOK, "data", "Data", d)
}

type entityDetail struct {
	IntegrationID, IntegrationName string
	Entity                         api.Item
	Properties                     string
	From, To                       []api.Item
	MoreFrom, MoreTo               bool
}

// entityPage shows an entity and its relationships both ways.
func (s *Server) entityPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	intID, key := r.PathValue("integration"), r.URL.Query().Get("key")
	if !api.ValidIntegrationID(intID) || key == "" || len(key) > 4096 {
		s.pageError(w, r, p, errorf(http.StatusNotFound, api.CodeNotFound, "no such entity"))
		return
	}
	ctx := r.Context()
	recs := s.jobs.RecordStore()
	it, err := recs.Item(ctx, api.KindEntity, intID, key)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d := entityDetail{IntegrationID: intID, Entity: it, Properties: prettyJSON(it.Properties)}
	if in, err := s.st.Integration(ctx, intID); err == nil {
		d.IntegrationName = in.Name
	}
	const limit = 100
	from, err := recs.List(ctx, api.KindRelationship, jobs.ListFilter{IntegrationID: intID, From: key, Limit: limit})
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	to, err := recs.List(ctx, api.KindRelationship, jobs.ListFilter{IntegrationID: intID, To: key, Limit: limit})
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d.From, d.MoreFrom, d.To, d.MoreTo = from.Items, from.Next != "", to.Items, to.Next != ""
	s.page(w, r, p, http.StatusOK, "entity", it.Key, d)
}

// Audit.

type auditData struct {
	Actor, Action, Target, Since, Until string
	Entries                             []api.AuditEntry
	Next                                string
	// Head is the chain's newest entry; Verification is set when the page
	// was asked to walk the whole chain (?verify=1: it reads every entry,
	// so it is a button, not part of every view).
	Head         store.Checkpoint
	Verification *api.AuditVerification
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	f, err := auditFilter(r, consolePage)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	ctx := r.Context()
	es, next, err := s.st.AuditPage(ctx, f)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	q := r.URL.Query()
	d := auditData{Actor: f.Actor, Action: f.Action, Target: f.Target, Since: q.Get("since"), Until: q.Get("until"), Next: next}
	for _, e := range es {
		d.Entries = append(d.Entries, api.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action,
			Target: e.Target, Details: json.RawMessage(e.Details), PrevHash: e.PrevHash, Hash: e.Hash})
	}
	if d.Head, err = s.st.AuditHead(ctx); err != nil {
		s.pageError(w, r, p, err)
		return
	}
	if q.Get("verify") != "" {
		v, err := s.auditVerification(ctx, nil)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		d.Verification = &v
	}
	s.page(w, r, p, http.StatusOK, "audit", "Audit log", d)
}
