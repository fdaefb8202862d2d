package platform

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/console"
	"github.com/collectorhq/collector/platform/store"
)

// The console's data pages. Each reads through the functions the API's
// handlers use (the list filters of lists.go, the views, the acts) after
// the same permission check (authorizePage), so the console has no second
// path to the data and shows only what the role may see.

// pageRoutes are the data pages, registered like the API's routes.
func (s *Server) pageRoutes() []console.Route {
	read, op, admin := access.PermRead, access.PermOperate, access.PermAdmin
	return []console.Route{
		{Pattern: "GET /{$}", Permission: read, Handler: s.homePage},
		{Pattern: "GET /collectors", Permission: read, Handler: s.collectorsListPage},
		{Pattern: "GET /collectors/events", Permission: read, Handler: s.collectorEvents},
		{Pattern: "GET /collectors/new", Permission: op, Handler: s.newCollectorPage},
		{Pattern: "POST /collectors/new", Permission: op, Handler: s.newCollectorSubmit},
		{Pattern: "GET /collectors/{id}", Permission: read, Handler: s.collectorPage},
		{Pattern: "POST /collectors/{id}/token", Permission: op, StepUp: true, Handler: s.collectorTokenSubmit},
		{Pattern: "POST /collectors/{id}/pool", Permission: op, Handler: s.collectorPoolSubmit},
		{Pattern: "GET /collectors/{id}/delete", Permission: op, StepUp: true, Handler: s.deleteCollectorPage},
		{Pattern: "POST /collectors/{id}/delete", Permission: op, StepUp: true, Handler: s.deleteCollectorSubmit},

		{Pattern: "GET /integrations", Permission: read, Handler: s.integrationsListPage},
		{Pattern: "GET /integrations/new", Permission: op, Handler: s.integrationFormPage},
		{Pattern: "POST /integrations/new", Permission: op, Handler: s.integrationFormSubmit},
		{Pattern: "GET /integrations/{id}", Permission: read, Handler: s.integrationPage},
		{Pattern: "GET /integrations/{id}/edit", Permission: op, Handler: s.integrationFormPage},
		{Pattern: "POST /integrations/{id}/edit", Permission: op, Handler: s.integrationFormSubmit},
		{Pattern: "POST /integrations/{id}/assign", Permission: op, Handler: s.assignSubmit},
		{Pattern: "POST /integrations/{id}/run", Permission: op, Handler: s.enqueueSubmit(s.RunNowAct)},
		{Pattern: "POST /integrations/{id}/validate", Permission: op, Handler: s.enqueueSubmit(s.ValidateAct)},
		{Pattern: "GET /integrations/{id}/delete", Permission: op, Handler: s.deleteIntegrationPage},
		{Pattern: "POST /integrations/{id}/delete", Permission: op, Handler: s.deleteIntegrationSubmit},

		{Pattern: "GET /jobs", Permission: read, Handler: s.jobsListPage},
		{Pattern: "GET /jobs/{id}", Permission: read, Handler: s.jobPage},
		{Pattern: "GET /jobs/{id}/events", Permission: read, Handler: s.jobEvents},
		{Pattern: "GET /jobs/{id}/cancel", Permission: op, Handler: s.cancelPage},
		{Pattern: "POST /jobs/{id}/cancel", Permission: op, Handler: s.cancelSubmit},

		{Pattern: "GET /data", Permission: read, Handler: s.dataPage},
		{Pattern: "GET /data/{integration}/entity", Permission: read, Handler: s.entityPage},

		{Pattern: "GET /audit", Permission: read, Handler: s.auditPage},

		{Pattern: "GET /users", Permission: admin, Handler: s.usersPage},
		{Pattern: "POST /users", Permission: admin, Handler: s.createUserSubmit},
		{Pattern: "GET /users/{id}/confirm", Permission: admin, StepUp: true, Handler: s.userActPage},
		{Pattern: "POST /users/{id}", Permission: admin, StepUp: true, Handler: s.userActSubmit},
		{Pattern: "GET /tokens/{id}/revoke", Permission: admin, Handler: s.revokeTokenPage},
		{Pattern: "POST /tokens/{id}/revoke", Permission: admin, Handler: s.revokeTokenSubmit},
	}
}

// page renders a data page for p.
func (s *Server) page(w http.ResponseWriter, r *http.Request, p *access.Principal, status int, name, title string, data any, scripts ...string) {
	s.console.Render(w, status, name, p, &console.Page{Title: title, Data: data, URL: r.URL, Scripts: scripts})
}

// pageError answers an error as the API would (status and message), as a
// page.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, p *access.Principal, err error) {
	he, known := toHTTPError(err)
	if !known {
		s.log.Error("page failed", "route", r.Pattern, "err", err)
	}
	title := http.StatusText(he.status)
	s.console.Error(w, p, he.status, title, he.message)
}

// formError splits an act's error into the form field it names (the
// API's messages start with the field) and its message; an error the
// form cannot show is returned as not shown.
func formError(err error, fields ...string) (field, msg string, shown bool) {
	he, known := toHTTPError(err)
	if !known || he.status >= 500 {
		return "", "", false
	}
	msg = he.message
	for _, f := range fields {
		if strings.HasPrefix(msg, f+" ") || strings.HasPrefix(msg, f+":") || strings.HasPrefix(msg, "secret field") && f == "secrets" {
			return f, msg, true
		}
	}
	return "", msg, true
}

// seeOther redirects after a successful POST.
func seeOther(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// overview is the home page's content.
type overview struct {
	Collectors store.StatusCounts
	Depth      map[string]int
}

func (s *Server) homePage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	counts, err := s.st.CountCollectors(r.Context(), s.now().Add(-s.activeWindow()))
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	depth, err := s.jobs.Queue().Depth(r.Context())
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d := overview{Collectors: counts, Depth: map[string]int{}}
	for st, n := range depth {
		d.Depth[string(st)] = n
	}
	s.page(w, r, p, http.StatusOK, "home", "Overview", d)
}

// Collectors.

type collectorsData struct {
	Q, Status, Pool string
	Statuses        []string
	Collectors      []api.Collector
	Next            string
}

var collectorStatuses = []string{"", api.CollectorStatusPending, api.CollectorStatusActive, api.CollectorStatusDegraded, api.CollectorStatusOffline}

func (s *Server) collectorsListPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	f, err := s.collectorFilter(r, consolePage)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	l, err := s.collectorsPage(r.Context(), f)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	s.page(w, r, p, http.StatusOK, "collectors", "Collectors", collectorsData{
		Q: f.Query, Status: f.Status, Pool: f.Pool, Statuses: collectorStatuses, Collectors: l.Collectors, Next: l.Next,
	}, "live.js")
}

type collectorForm struct {
	Name, Pool           string
	NameError, PoolError string
}

func (s *Server) newCollectorPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	s.page(w, r, p, http.StatusOK, "collector_new", "New collector", collectorForm{})
}

func (s *Server) newCollectorSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	form := collectorForm{Name: strings.TrimSpace(r.PostFormValue("name")), Pool: strings.TrimSpace(r.PostFormValue("pool"))}
	g, err := s.CreateCollectorAct(r, api.CreateCollectorRequest{Name: form.Name, Pool: form.Pool})
	if err != nil {
		field, msg, shown := formError(err, "name", "pool")
		if !shown {
			s.pageError(w, r, p, err)
			return
		}
		status := http.StatusBadRequest
		if he, _ := toHTTPError(err); he != nil {
			status = he.status
		}
		if field == "pool" {
			form.PoolError = msg
		} else {
			form.NameError = msg
		}
		s.page(w, r, p, status, "collector_new", "New collector", form)
		return
	}
	s.showGrant(w, r, p, g)
}

// showGrant shows an enrollment token and the install commands, once:
// the page is not stored by the browser (no-store), and the token is
// never shown again.
func (s *Server) showGrant(w http.ResponseWriter, r *http.Request, p *access.Principal, g *api.EnrollmentGrant) {
	s.page(w, r, p, http.StatusCreated, "collector_created", "Install "+g.Collector.Name, g, "copy.js")
}

type collectorDetail struct {
	Collector    api.Collector
	Charts       []any
	Integrations []store.Integration
	MoreInts     string
	Jobs         []api.Job
	MoreJobs     bool
}

func (s *Server) loadCollectorView(r *http.Request) (api.Collector, error) {
	id, err := pathID(r, api.ValidCollectorID, "collector")
	if err != nil {
		return api.Collector{}, err
	}
	c, err := s.st.Collector(r.Context(), id)
	if errors.Is(err, store.ErrIntegrity) && c.ID == id {
		err = nil // shown, flagged degraded
	}
	if err != nil {
		return api.Collector{}, err
	}
	return s.collectorView(c), nil
}

func (s *Server) collectorPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	c, err := s.loadCollectorView(r)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	ctx := r.Context()
	d := collectorDetail{Collector: c}
	d.Charts, err = s.collectorCharts(ctx, c.ID)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	if d.Integrations, d.MoreInts, err = s.st.IntegrationsPage(ctx, store.IntegrationFilter{CollectorID: c.ID, Limit: consolePage}); err != nil {
		s.pageError(w, r, p, err)
		return
	}
	jl, err := s.jobsPage(ctx, jobFilterFor("", c.ID, 10))
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d.Jobs, d.MoreJobs = jl.Jobs, jl.Next != ""
	s.page(w, r, p, http.StatusOK, "collector", c.Name, d)
}

func (s *Server) collectorTokenSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	id, err := pathID(r, api.ValidCollectorID, "collector")
	if err == nil {
		var g *api.EnrollmentGrant
		if g, err = s.NewEnrollmentTokenAct(r, id); err == nil {
			s.showGrant(w, r, p, g)
			return
		}
	}
	s.pageError(w, r, p, err)
}

func (s *Server) collectorPoolSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	id, err := pathID(r, api.ValidCollectorID, "collector")
	if err == nil {
		if _, err = s.SetCollectorPoolAct(r, id, strings.TrimSpace(r.PostFormValue("pool"))); err == nil {
			seeOther(w, r, "/collectors/"+id)
			return
		}
	}
	s.pageError(w, r, p, err)
}

// confirmData is a destructive act's confirmation page; Blockers are what
// must be moved first (each a link to where to do it).
type confirmData struct {
	Title, Question, Action, Button, Back string
	BlockedBy                             string
	Blockers                              []link
	Checkbox                              *checkbox
	// Hidden are the form's fixed values (which act).
	Hidden map[string]string
}

type link struct{ Href, Name string }

type checkbox struct{ Name, Label string }

func (s *Server) deleteCollectorConfirm(w http.ResponseWriter, r *http.Request, p *access.Principal, status int, c api.Collector, blockers []store.IntegrationRef) {
	d := confirmData{
		Title: "Delete " + c.Name, Action: "/collectors/" + c.ID + "/delete", Button: "Delete the collector", Back: "/collectors/" + c.ID,
		Question: "Deleting the collector revokes its credentials at once: it can no longer heartbeat or take jobs. Its job history stays.",
	}
	for _, b := range blockers {
		d.Blockers = append(d.Blockers, link{Href: "/integrations/" + b.ID + "#assign", Name: b.Name})
	}
	if len(d.Blockers) > 0 {
		d.BlockedBy = "This collector still has integrations. Move each to another collector (or unassign it) first:"
	}
	s.page(w, r, p, status, "confirm", d.Title, d)
}

func (s *Server) deleteCollectorPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	c, err := s.loadCollectorView(r)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	ins, _, err := s.st.IntegrationsPage(r.Context(), store.IntegrationFilter{CollectorID: c.ID, Limit: maxListPage})
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	var refs []store.IntegrationRef
	for _, in := range ins {
		refs = append(refs, store.IntegrationRef{ID: in.ID, Name: in.Name})
	}
	s.deleteCollectorConfirm(w, r, p, http.StatusOK, c, refs)
}

func (s *Server) deleteCollectorSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	c, err := s.loadCollectorView(r)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	err = s.DeleteCollectorAct(r, c.ID)
	var ae *store.AssignedError
	switch {
	case errors.As(err, &ae):
		s.deleteCollectorConfirm(w, r, p, http.StatusConflict, c, ae.Integrations)
	case err != nil:
		s.pageError(w, r, p, err)
	default:
		seeOther(w, r, "/collectors?deleted="+url.QueryEscape(c.Name))
	}
}
