package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/configschema"
	"github.com/collectorhq/collector/platform/console"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
)

// integrationRow is a row of the integrations page.
type integrationRow struct {
	api.Integration
	CollectorName string
	Last          *api.Job
	NextRun       time.Time
}

type integrationsData struct {
	Q, Collector string
	Rows         []integrationRow
	Next         string
}

// collectorName names a collector for a page ("" when it is gone).
func (s *Server) collectorName(ctx context.Context, id string, cache map[string]string) string {
	if id == "" {
		return ""
	}
	if n, ok := cache[id]; ok {
		return n
	}
	c, err := s.st.Collector(ctx, id)
	if err != nil && !errors.Is(err, store.ErrIntegrity) {
		cache[id] = ""
		return ""
	}
	cache[id] = c.Name
	return c.Name
}

// lastJob is an integration's newest job.
func (s *Server) lastJob(ctx context.Context, integrationID string) (*api.Job, error) {
	l, err := s.jobs.Queue().List(ctx, queue.Filter{IntegrationID: integrationID, Limit: 1})
	if err != nil || len(l) == 0 {
		return nil, err
	}
	v := s.jobs.View(ctx, l[0])
	return &v, nil
}

func (s *Server) integrationsListPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	f, err := integrationFilter(r, consolePage)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	ctx := r.Context()
	_, l, err := s.integrationsPage(ctx, f)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d := integrationsData{Q: f.Query, Collector: f.CollectorID, Next: l.Next}
	names := map[string]string{}
	for _, in := range l.Integrations {
		row := integrationRow{Integration: in, CollectorName: s.collectorName(ctx, in.CollectorID, names), NextRun: s.jobs.NextRun(in.ID)}
		if row.Last, err = s.lastJob(ctx, in.ID); err != nil {
			s.pageError(w, r, p, err)
			return
		}
		d.Rows = append(d.Rows, row)
	}
	s.page(w, r, p, http.StatusOK, "integrations", "Integrations", d)
}

// integrationDetail is the integration page.
type integrationDetail struct {
	Integration   api.Integration
	CollectorName string
	ConfigText    string // the config, secret fields shown as set
	NextRun       time.Time
	Jobs          []api.Job
	MoreJobs      bool
	Charts        []template.HTML
	Collectors    []option
	Message       string
}

type option struct{ Value, Label string }

// collectorOptions are the collectors an integration can be assigned to
// (the first page by name; a larger fleet is searched by ID).
func (s *Server) collectorOptions(ctx context.Context) ([]option, error) {
	cs, _, err := s.st.CollectorsPage(ctx, store.CollectorFilter{Limit: maxListPage})
	if err != nil {
		return nil, err
	}
	out := make([]option, 0, len(cs))
	pools := map[string]bool{}
	for _, c := range cs {
		label := c.Name
		if c.Pool != "" {
			label += " (pool " + c.Pool + ")"
			if !pools[c.Pool] {
				pools[c.Pool] = true
				out = append(out, option{Value: poolOption + c.Pool, Label: "pool " + c.Pool + ": any active member"})
			}
		}
		out = append(out, option{Value: c.ID, Label: label})
	}
	return out, nil
}

// poolOption prefixes a pool among the collectors of a form's select
// (collector IDs start with col_).
const poolOption = "pool:"

// formTarget reads a collector-or-pool select.
func formTarget(v string) api.AssignRequest {
	if p, ok := strings.CutPrefix(v, poolOption); ok {
		return api.AssignRequest{Pool: p}
	}
	return api.AssignRequest{CollectorID: v}
}

// maskedConfigText shows a config with its secret fields as "(set)".
func maskedConfigText(in api.Integration) string {
	var cfg map[string]json.RawMessage
	if json.Unmarshal(in.Config, &cfg) != nil {
		return string(in.Config)
	}
	for _, f := range in.SecretFields {
		if _, ok := cfg[f]; ok {
			cfg[f] = json.RawMessage(`"(secret: set)"`)
		}
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return string(b)
}

func (s *Server) integrationPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	in, err := s.loadIntegration(r)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	ctx := r.Context()
	v, err := s.integrationView(in)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d := integrationDetail{Integration: v, ConfigText: maskedConfigText(v), NextRun: s.jobs.NextRun(in.ID),
		CollectorName: s.collectorName(ctx, in.CollectorID, map[string]string{}), Message: r.URL.Query().Get("done")}
	jl, err := s.jobsPage(ctx, jobFilterFor(in.ID, "", 10))
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d.Jobs, d.MoreJobs = jl.Jobs, jl.Next != ""
	if d.Charts, err = s.runCharts(ctx, in.ID); err != nil {
		s.pageError(w, r, p, err)
		return
	}
	if access.Allows(p.Role, access.PermOperate) {
		if d.Collectors, err = s.collectorOptions(ctx); err != nil {
			s.pageError(w, r, p, err)
			return
		}
	}
	s.page(w, r, p, http.StatusOK, "integration", in.Name, d)
}

// runCharts are an integration's last runs: duration, records, peak
// memory.
func (s *Server) runCharts(ctx context.Context, integrationID string) ([]template.HTML, error) {
	const runs = 30
	list, err := s.jobs.Queue().List(ctx, queue.Filter{IntegrationID: integrationID, Limit: runs,
		States: []queue.State{queue.StateSucceeded, queue.StateFailed, queue.StateDead, queue.StateCanceled}})
	if err != nil {
		return nil, err
	}
	slices.Reverse(list) // oldest first
	var dur, recs, mem []console.Point
	for _, j := range list {
		v := s.jobs.View(ctx, j)
		d := console.Point{Gap: j.StartedAt.IsZero()}
		if !d.Gap {
			d.V = j.FinishedAt.Sub(j.StartedAt).Seconds()
		}
		dur = append(dur, d)
		recs = append(recs, console.Point{V: float64(v.Records)})
		mem = append(mem, console.Point{V: float64(j.PeakMemoryBytes)})
	}
	return []template.HTML{
		console.RunChart(fmt.Sprintf("Duration of the last %d runs", len(list)), console.Seconds, dur),
		console.RunChart("Records per run", console.Count, recs),
		console.RunChart("Peak memory per run", console.Bytes, mem),
	}, nil
}

// collectorCharts are a collector's last 24 hours from its heartbeat
// rollups: free memory, running jobs, heartbeats.
func (s *Server) collectorCharts(ctx context.Context, id string) ([]any, error) {
	to := s.now()
	from := to.Add(-24 * time.Hour)
	rs, err := s.st.Rollups(ctx, id, from)
	if err != nil {
		return nil, err
	}
	var free, running, beats []console.Point
	var prev time.Time
	for _, r := range rs {
		if !prev.IsZero() && r.At.Sub(prev) > 10*time.Minute {
			// Silent for a while: break the lines there.
			free, running, beats = append(free, console.Point{Gap: true}), append(running, console.Point{Gap: true}), append(beats, console.Point{Gap: true})
		}
		prev = r.At
		free = append(free, console.Point{At: r.At, V: float64(r.MemFreeMin)})
		running = append(running, console.Point{At: r.At, V: float64(r.RunningMax)})
		beats = append(beats, console.Point{At: r.At, V: float64(r.Beats)})
	}
	return []any{
		console.TimeChart("Free memory (lowest per 5 minutes)", console.Bytes, from, to, free),
		console.TimeChart("Running jobs (most per 5 minutes)", console.Count, from, to, running),
		console.TimeChart("Heartbeats per 5 minutes", console.Count, from, to, beats),
	}, nil
}

// jobFilterFor is the filter of a detail page's recent jobs.
func jobFilterFor(integrationID, collectorID string, limit int) queue.Filter {
	return queue.Filter{IntegrationID: integrationID, CollectorID: collectorID, Limit: limit}
}

// The integration form. Its config is either a form built from the
// image's config schema (Fields) or a JSON editor (ConfigJSON) plus a
// list of secret fields; secret values are write-only: never sent back
// to the browser, not even after an error (the user enters them again).
type integrationForm struct {
	ID                       string // "" when creating
	Name, Image, IntervalSec string
	Network                  string
	Networks                 []string
	CollectorID              string
	Collectors               []option
	// Schema form.
	UseSchema bool
	Fields    []formField
	// JSON editor.
	ConfigJSON string
	Secrets    []secretRow
	// Checked says the image was verified (its digest).
	Checked string
	Errors  map[string]string
	Error   string
}

type formField struct {
	configschema.Field
	Value string
	Set   bool // a secret with a stored value
}

type secretRow struct {
	Name string
	Set  bool // stored: an empty input keeps it
}

// newSecretRows is how many empty secret rows the JSON form offers.
const newSecretRows = 2

func (s *Server) blankForm(ctx context.Context) (*integrationForm, error) {
	cs, err := s.collectorOptions(ctx)
	if err != nil {
		return nil, err
	}
	f := &integrationForm{IntervalSec: "3600", Networks: api.Networks, Collectors: cs, ConfigJSON: "{}", Errors: map[string]string{}}
	for range newSecretRows {
		f.Secrets = append(f.Secrets, secretRow{})
	}
	return f, nil
}

// useSchema switches the form to the schema's fields, keeping values
// from cfg (secrets only as set or not).
func (f *integrationForm) useSchema(sc *configschema.Schema, cfg map[string]json.RawMessage, stored []string) {
	fields, simple := sc.Fields()
	if !simple {
		return
	}
	f.UseSchema, f.Fields = true, nil
	for _, fd := range fields {
		ff := formField{Field: fd}
		raw, ok := cfg[fd.Name]
		switch {
		case fd.Secret || slices.Contains(stored, fd.Name):
			ff.Secret = true
			ff.Set = ok && slices.Contains(stored, fd.Name)
		case ok:
			var s string
			if json.Unmarshal(raw, &s) == nil {
				ff.Value = s
			} else {
				ff.Value = string(raw)
			}
		default:
			ff.Value = fd.Default
		}
		f.Fields = append(f.Fields, ff)
	}
}

func (s *Server) integrationFormPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	ctx := r.Context()
	f, err := s.blankForm(ctx)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	if r.PathValue("id") != "" {
		in, err := s.loadIntegration(r)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		if err := s.fillForm(f, in); err != nil {
			s.pageError(w, r, p, err)
			return
		}
	}
	s.renderForm(w, r, p, http.StatusOK, f)
}

// fillForm loads an integration into the form, secrets as "set".
func (s *Server) fillForm(f *integrationForm, in store.Integration) error {
	cfg, err := s.open(in)
	if err != nil {
		return err
	}
	f.ID, f.Name, f.Image, f.Network, f.CollectorID = in.ID, in.Name, in.Image, in.Network, in.CollectorID
	f.IntervalSec = strconv.Itoa(int(in.Interval / time.Second))
	plain := map[string]json.RawMessage{}
	f.Secrets = nil
	for k, v := range cfg {
		if slices.Contains(in.SecretFields, k) {
			f.Secrets = append(f.Secrets, secretRow{Name: k, Set: true})
		} else {
			plain[k] = v
		}
	}
	slices.SortFunc(f.Secrets, func(a, b secretRow) int { return strings.Compare(a.Name, b.Name) })
	for range newSecretRows {
		f.Secrets = append(f.Secrets, secretRow{})
	}
	b, _ := json.MarshalIndent(plain, "", "  ")
	f.ConfigJSON = string(b)
	if len(in.ConfigSchema) > 0 {
		if sc, err := configschema.Parse(in.ConfigSchema); err == nil {
			f.useSchema(sc, cfg, in.SecretFields)
		}
	}
	return nil
}

func (s *Server) renderForm(w http.ResponseWriter, r *http.Request, p *access.Principal, status int, f *integrationForm) {
	title := "New integration"
	if f.ID != "" {
		title = "Edit " + f.Name
	}
	s.page(w, r, p, status, "integration_form", title, f)
}

// readForm reads the posted form into f and returns the config and
// secret fields it gives. stored are the integration's secret fields
// (edit): a secret left empty keeps its value (sent as the mask).
func readForm(r *http.Request, f *integrationForm, stored []string, schema *configschema.Schema) (map[string]json.RawMessage, []string, error) {
	pf := r.PostForm
	f.Name, f.Image = strings.TrimSpace(pf.Get("name")), strings.TrimSpace(pf.Get("image"))
	f.IntervalSec, f.Network, f.CollectorID = strings.TrimSpace(pf.Get("interval_sec")), pf.Get("network"), pf.Get("collector_id")
	var cfg map[string]json.RawMessage
	var secrets []string
	mask := json.RawMessage(`"` + api.SecretMask + `"`)
	if pf.Get("form") == "schema" && schema != nil {
		fields, _ := schema.Fields()
		var err error
		cfg, err = configschema.FromForm(fields, func(name string) (string, bool) {
			if slices.Contains(schema.SecretFields(), name) || slices.Contains(stored, name) {
				return "", false // secrets below
			}
			v, ok := pf["field."+name]
			if !ok {
				return "", false
			}
			return strings.TrimSpace(v[0]), true
		})
		f.useSchema(schema, nil, stored)
		for i, fd := range f.Fields {
			if !fd.Secret {
				f.Fields[i].Value = pf.Get("field." + fd.Name)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		for i, fd := range f.Fields {
			if !fd.Secret {
				continue
			}
			delete(cfg, fd.Name)
			switch v := pf.Get("field." + fd.Name); {
			case v != "":
				b, _ := json.Marshal(v)
				cfg[fd.Name], secrets = b, append(secrets, fd.Name)
			case slices.Contains(stored, fd.Name):
				cfg[fd.Name], secrets = mask, append(secrets, fd.Name)
				f.Fields[i].Set = true
			}
		}
		return cfg, secrets, nil
	}
	f.ConfigJSON = pf.Get("config")
	if err := json.Unmarshal([]byte(f.ConfigJSON), &cfg); err != nil || cfg == nil {
		return nil, nil, fmt.Errorf("config: want a JSON object (%v)", jsonErr(err))
	}
	f.Secrets = nil
	names, values := pf["secret_name"], pf["secret_value"]
	for i := range min(len(names), len(values), 100) {
		name, value := strings.TrimSpace(names[i]), values[i]
		if name == "" {
			continue
		}
		if _, ok := cfg[name]; ok {
			return nil, nil, fmt.Errorf("secrets: %q is both in the config and a secret field; keep it in one place", name)
		}
		row := secretRow{Name: name}
		switch {
		case value != "":
			b, _ := json.Marshal(value)
			cfg[name] = b
		case slices.Contains(stored, name):
			cfg[name], row.Set = mask, true
		default:
			return nil, nil, fmt.Errorf("secrets: %q has no value", name)
		}
		secrets = append(secrets, name)
		f.Secrets = append(f.Secrets, row)
	}
	for range newSecretRows {
		f.Secrets = append(f.Secrets, secretRow{})
	}
	return cfg, secrets, nil
}

func jsonErr(err error) string {
	if err == nil {
		return "got null"
	}
	return err.Error()
}

func (s *Server) integrationFormSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	ctx := r.Context()
	f, err := s.blankForm(ctx)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	var current *store.Integration
	var schema *configschema.Schema
	if r.PathValue("id") != "" {
		in, err := s.loadIntegration(r)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		current, f.ID = &in, in.ID
		if len(in.ConfigSchema) > 0 {
			schema, _ = configschema.Parse(in.ConfigSchema)
		}
	}
	var stored []string
	if current != nil {
		stored = current.SecretFields
	}
	fail := func(status int, err error) {
		field, msg, shown := formError(err, "name", "image", "interval_sec", "network", "collector_id", "config", "secrets")
		if !shown {
			s.pageError(w, r, p, err)
			return
		}
		if field == "" {
			f.Error = msg
		} else {
			f.Errors[field] = msg
		}
		if he, _ := toHTTPError(err); he != nil && he.status < 500 {
			status = he.status
		}
		s.renderForm(w, r, p, status, f)
	}

	// "Check image": verify it now and build the form from its schema.
	if r.PostFormValue("action") == "check" {
		readForm(r, f, stored, schema) // keep what was typed; errors come on save
		checked, err := s.checkImage(ctx, f.Image)
		if err != nil {
			fail(http.StatusBadRequest, err)
			return
		}
		if checked == nil {
			f.Checked = "not verified: image checks are off on this platform"
		} else {
			f.Checked = checked.Digest
			if checked.Schema != nil {
				var cfg map[string]json.RawMessage
				json.Unmarshal([]byte(f.ConfigJSON), &cfg)
				f.useSchema(checked.Schema, cfg, stored)
			}
		}
		s.renderForm(w, r, p, http.StatusOK, f)
		return
	}

	// A new integration's schema is its image's: the form was built from
	// it after a check, and the act checks the image again.
	if current == nil && r.PostFormValue("form") == "schema" {
		checked, err := s.checkImage(ctx, strings.TrimSpace(r.PostFormValue("image")))
		if err != nil {
			readForm(r, f, stored, nil)
			fail(http.StatusBadRequest, err)
			return
		}
		if checked != nil {
			schema = checked.Schema
		}
	}
	cfg, secrets, err := readForm(r, f, stored, schema)
	if err != nil {
		fail(http.StatusBadRequest, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "%v", err))
		return
	}
	raw, _ := json.Marshal(cfg)
	interval, err := strconv.Atoi(f.IntervalSec)
	if err != nil {
		fail(http.StatusBadRequest, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "interval_sec must be a whole number of seconds"))
		return
	}
	if secrets == nil {
		secrets = []string{}
	}
	var v *api.Integration
	if current == nil {
		to := formTarget(f.CollectorID)
		v, err = s.CreateIntegrationAct(r, api.IntegrationRequest{Name: f.Name, Image: f.Image, IntervalSec: interval,
			CollectorID: to.CollectorID, Pool: to.Pool, Network: f.Network, Config: raw, SecretFields: secrets})
	} else {
		v, err = s.UpdateIntegrationAct(r, current.ID, api.IntegrationUpdate{Name: &f.Name, Image: &f.Image, IntervalSec: &interval,
			Network: &f.Network, Config: raw, SecretFields: &secrets})
	}
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	done := "saved"
	if len(v.Warnings) > 0 {
		done = "saved-unchecked"
	}
	seeOther(w, r, "/integrations/"+v.ID+"?done="+done)
}

func (s *Server) assignSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	in, err := s.loadIntegration(r)
	if err == nil {
		_, err = s.AssignIntegrationAct(r, in.ID, formTarget(r.PostFormValue("collector_id")))
	}
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	seeOther(w, r, "/integrations/"+in.ID+"?done=assigned")
}

// enqueueSubmit queues a job by act ("Run now", "Test credentials") and
// shows it.
func (s *Server) enqueueSubmit(act func(*http.Request, store.Integration) (*api.Job, bool, error)) func(http.ResponseWriter, *http.Request, *access.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p *access.Principal) {
		in, err := s.loadIntegration(r)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		j, _, err := act(r, in)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		seeOther(w, r, "/jobs/"+j.ID)
	}
}

func (s *Server) deleteIntegrationPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	in, err := s.loadIntegration(r)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d := confirmData{Title: "Delete " + in.Name, Action: "/integrations/" + in.ID + "/delete", Button: "Delete the integration",
		Back:     "/integrations/" + in.ID,
		Question: "Deleting the integration cancels its queued and running jobs and stops its schedule. Its collected data and job history stay unless you purge them.",
		Checkbox: &checkbox{Name: "purge", Label: "Also delete its entities, relationships, jobs and job logs"}}
	s.page(w, r, p, http.StatusOK, "confirm", d.Title, d)
}

func (s *Server) deleteIntegrationSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	in, err := s.loadIntegration(r)
	if err == nil {
		err = s.DeleteIntegrationAct(r, in.ID, r.PostFormValue("purge") != "")
	}
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	seeOther(w, r, "/integrations")
}

// prettyJSON indents a JSON document for a page.
func prettyJSON(raw []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}
