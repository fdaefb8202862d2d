package platform

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/configschema"
	"github.com/collectorhq/collector/platform/store"
)

// ConfigAAD binds a sealed config to its integration and to what decides
// where and how its secrets are used: the collector or pool it runs on, the image
// that reads them, its network and which fields are secret. Editing any
// of them in the database (to point an integration at another collector,
// or unmark a secret field) makes the config unopenable instead of
// handing its secrets out: the database is not the trust root.
func ConfigAAD(in store.Integration) []byte {
	fields := in.SecretFields
	if fields == nil {
		fields = []string{}
	}
	b, _ := json.Marshal(struct {
		V            int      `json:"v"`
		ID           string   `json:"id"`
		CollectorID  string   `json:"collector_id"`
		Pool         string   `json:"pool,omitempty"`
		Image        string   `json:"image"`
		Network      string   `json:"network"`
		SecretFields []string `json:"secret_fields"`
	}{2, in.ID, in.CollectorID, in.Pool, in.Image, in.Network, fields})
	return b
}

// seal encrypts an integration's config at rest, bound to ConfigAAD(in).
func (s *Server) seal(in store.Integration, cfg map[string]json.RawMessage) ([]byte, error) {
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return s.keys.Seal(plain, ConfigAAD(in))
}

func (s *Server) open(in store.Integration) (map[string]json.RawMessage, error) {
	plain, err := s.keys.Open(in.SealedConfig, ConfigAAD(in))
	if err != nil {
		return nil, fmt.Errorf("open config of integration %s: %w", in.ID, err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(plain, &cfg); err != nil {
		return nil, fmt.Errorf("decode config of integration %s: %w", in.ID, err)
	}
	return cfg, nil
}

var maskedValue = json.RawMessage(`"` + api.SecretMask + `"`)

// integrationView shows in with every secret field masked.
func (s *Server) integrationView(in store.Integration) (api.Integration, error) {
	cfg, err := s.open(in)
	if err != nil {
		return api.Integration{}, err
	}
	for _, f := range in.SecretFields {
		if _, ok := cfg[f]; ok {
			cfg[f] = maskedValue
		}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return api.Integration{}, err
	}
	fields := in.SecretFields
	if fields == nil {
		fields = []string{}
	}
	return api.Integration{
		ID: in.ID, Name: in.Name, Image: in.Image, Config: raw, SecretFields: fields, ConfigSchema: in.ConfigSchema,
		IntervalSec: int(in.Interval / time.Second), CollectorID: in.CollectorID, Pool: in.Pool, Network: in.Network,
		CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
	}, nil
}

func (s *Server) writeIntegration(w http.ResponseWriter, status int, in store.Integration) error {
	v, err := s.integrationView(in)
	if err != nil {
		return err
	}
	writeJSON(w, status, v)
	return nil
}

// integrationDetails is what the audit log records: names, never values.
func integrationDetails(in store.Integration) map[string]any {
	return map[string]any{"name": in.Name, "image": in.Image, "collector_id": in.CollectorID, "pool": in.Pool,
		"secret_fields": in.SecretFields, "interval_sec": int(in.Interval / time.Second), "network": in.Network}
}

func (s *Server) createIntegration(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, api.DecodeIntegration)
	if err != nil {
		return err
	}
	in, err := s.CreateIntegrationAct(r, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, in)
	return nil
}

// CreateIntegrationAct creates an integration, its secret fields sealed:
// the one path for the API and the console.
func (s *Server) CreateIntegrationAct(r *http.Request, req api.IntegrationRequest) (*api.Integration, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	cfg, err := api.ConfigObject(req.Config)
	if err != nil {
		return nil, err
	}
	checked, warning, err := s.checkImageOrWarn(r.Context(), req.Image, req.Strict)
	if err != nil {
		return nil, err
	}
	now := s.now()
	in := store.Integration{ID: newID("int"), Name: req.Name, Image: req.Image, SecretFields: req.SecretFields,
		Interval: time.Duration(req.IntervalSec) * time.Second, CollectorID: req.CollectorID, Pool: req.Pool, Network: req.Network,
		CreatedAt: now, UpdatedAt: now}
	if checked != nil && checked.Schema != nil {
		in.ConfigSchema = checked.Schema.Raw()
		in.SecretFields = withDeclaredSecrets(in.SecretFields, checked.Schema.SecretFields(), cfg)
	}
	for _, f := range in.SecretFields {
		if string(cfg[f]) == string(maskedValue) {
			return nil, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "secret field %q holds the mask %q, not a value", f, api.SecretMask)
		}
	}
	if err := validateConfig(in.ConfigSchema, req.Config, in.SecretFields); err != nil {
		return nil, err
	}
	if in.SealedConfig, err = s.seal(in, cfg); err != nil {
		return nil, err
	}
	ev := s.event(r, "integration.created", in.ID, integrationDetails(in))
	if err := s.st.CreateIntegration(r.Context(), in, ev); err != nil {
		return nil, err
	}
	s.log.Info("integration created", "integration", in.ID, "name", in.Name, "collector", in.CollectorID)
	v, err := s.integrationView(in)
	if warning != "" {
		v.Warnings = []string{warning}
	}
	return &v, err
}

// listIntegrations is a page of integrations by name: ?q=, ?collector=,
// ?after= (the previous page's "next") and ?limit=.
func (s *Server) listIntegrations(w http.ResponseWriter, r *http.Request) error {
	f, err := integrationFilter(r, defaultListPage)
	if err != nil {
		return err
	}
	_, out, err := s.integrationsPage(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) loadIntegration(r *http.Request) (store.Integration, error) {
	id, err := pathID(r, api.ValidIntegrationID, "integration")
	if err != nil {
		return store.Integration{}, err
	}
	return s.st.Integration(r.Context(), id)
}

func (s *Server) showIntegration(w http.ResponseWriter, r *http.Request) error {
	in, err := s.loadIntegration(r)
	if err != nil {
		return err
	}
	return s.writeIntegration(w, http.StatusOK, in)
}

func (s *Server) updateIntegration(w http.ResponseWriter, r *http.Request) error {
	in, err := s.loadIntegration(r)
	if err != nil {
		return err
	}
	req, err := decode(s, w, r, api.DecodeIntegrationUpdate)
	if err != nil {
		return err
	}
	v, err := s.UpdateIntegrationAct(r, in.ID, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// UpdateIntegrationAct changes what req carries; a secret field sent as
// the mask keeps its stored value.
func (s *Server) UpdateIntegrationAct(r *http.Request, id string, req api.IntegrationUpdate) (*api.Integration, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	in, err := s.st.Integration(r.Context(), id)
	if err != nil {
		return nil, err
	}
	var warning string
	if req.Image != nil {
		// An image is checked as a new integration's is (the same one
		// again too: the way to have an image saved unchecked read), and
		// brings its own schema, or none. A new image that could not be
		// read has none: the old image's would check configs against the
		// wrong form; the same image keeps what was read of it.
		checked, w, err := s.checkImageOrWarn(r.Context(), *req.Image, req.Strict)
		if err != nil {
			return nil, err
		}
		warning = w
		if checked != nil || *req.Image != in.Image {
			in.ConfigSchema = nil
		}
		if checked != nil && checked.Schema != nil {
			in.ConfigSchema = checked.Schema.Raw()
		}
	}
	changed, err := s.applyUpdate(&in, req)
	if err != nil {
		return nil, err
	}
	in.UpdatedAt = s.now()
	details := integrationDetails(in)
	details["changed"] = changed
	ev := s.event(r, "integration.updated", in.ID, details)
	if err := s.st.UpdateIntegration(r.Context(), in, ev); err != nil {
		return nil, err
	}
	s.log.Info("integration updated", "integration", in.ID, "changed", changed)
	v, err := s.integrationView(in)
	if warning != "" {
		v.Warnings = []string{warning}
	}
	return &v, err
}

// applyUpdate applies req to in and returns the names of the changed fields.
// A secret field sent as the mask keeps its stored value.
func (s *Server) applyUpdate(in *store.Integration, req api.IntegrationUpdate) ([]string, error) {
	orig := new(store.Integration)
	*orig = *in
	var changed []string
	prevSecret := slices.Clone(in.SecretFields)
	set := func(name string, apply func()) { apply(); changed = append(changed, name) }
	if req.Name != nil {
		set("name", func() { in.Name = *req.Name })
	}
	if req.Image != nil {
		set("image", func() { in.Image = *req.Image })
	}
	if req.IntervalSec != nil {
		set("interval_sec", func() { in.Interval = time.Duration(*req.IntervalSec) * time.Second })
	}
	if req.Network != nil {
		set("network", func() { in.Network = *req.Network })
	}
	if req.SecretFields != nil {
		set("secret_fields", func() { in.SecretFields = *req.SecretFields })
	}
	old, err := s.open(*orig)
	if err != nil {
		return nil, err
	}
	cfg := old
	if req.Config != nil {
		changed = append(changed, "config")
		cfg, _ = api.ConfigObject(req.Config) // validated by the decoder
	}
	for _, f := range in.SecretFields {
		v, ok := cfg[f]
		switch {
		case !ok:
			return nil, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "secret field %q is not a top-level key of config", f)
		case string(v) != string(maskedValue):
		case old[f] == nil || !slices.Contains(prevSecret, f):
			return nil, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "secret field %q is masked but has no stored secret value: send the value", f)
		default:
			cfg[f] = old[f]
		}
	}
	// A field that stops being secret must come with a new value, or the
	// API would reveal the stored secret from then on.
	for _, f := range prevSecret {
		if slices.Contains(in.SecretFields, f) {
			continue
		}
		if _, ok := cfg[f]; ok && (req.Config == nil || string(cfg[f]) == string(maskedValue)) {
			return nil, errorf(http.StatusBadRequest, api.CodeInvalidRequest,
				"field %q stops being secret: send a new config with a new value for it (the stored secret is never revealed)", f)
		}
	}
	if len(in.ConfigSchema) > 0 {
		sc, err := configschema.Parse(in.ConfigSchema)
		if err != nil {
			return nil, fmt.Errorf("stored config schema of %s: %w", in.ID, err)
		}
		in.SecretFields = withDeclaredSecrets(in.SecretFields, sc.SecretFields(), cfg)
		plain, _ := json.Marshal(cfg)
		if err := validateConfig(in.ConfigSchema, plain, in.SecretFields); err != nil {
			return nil, err
		}
	}
	if in.SealedConfig, err = s.seal(*in, cfg); err != nil {
		return nil, err
	}
	return changed, nil
}

// withDeclaredSecrets adds to secret the fields the image's schema marks
// writeOnly that the config holds: a value the integration calls secret
// is sealed and masked even if the request did not list it.
func withDeclaredSecrets(secret, declared []string, cfg map[string]json.RawMessage) []string {
	out := slices.Clone(secret)
	for _, f := range declared {
		if _, ok := cfg[f]; ok && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// assignIntegration moves an integration to another collector without its
// credentials being entered again: its config is opened and sealed again
// for the new target, and its queued job moves with it, in one
// transaction. A job already running on the old collector finishes there.
func (s *Server) assignIntegration(w http.ResponseWriter, r *http.Request) error {
	in, err := s.loadIntegration(r)
	if err != nil {
		return err
	}
	req, err := decodeInto[api.AssignRequest](s, w, r)
	if err != nil {
		return err
	}
	v, err := s.AssignIntegrationAct(r, in.ID, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// AssignIntegrationAct moves an integration to a collector or a pool
// (neither unassigns it) with its queued job; its config is sealed again
// for the new target.
func (s *Server) AssignIntegrationAct(r *http.Request, id string, to api.AssignRequest) (*api.Integration, error) {
	if to.CollectorID != "" || to.Pool != "" {
		if err := to.Validate(); err != nil {
			return nil, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "%v", err)
		}
	}
	in, err := s.st.Integration(r.Context(), id)
	if err != nil {
		return nil, err
	}
	cfg, err := s.open(in)
	if err != nil {
		return nil, err
	}
	from, fromPool := in.CollectorID, in.Pool
	in.CollectorID, in.Pool, in.UpdatedAt = to.CollectorID, to.Pool, s.now()
	if in.SealedConfig, err = s.seal(in, cfg); err != nil {
		return nil, err
	}
	ev := s.event(r, "integration.assigned", in.ID, map[string]any{"name": in.Name, "from": from, "to": in.CollectorID,
		"from_pool": fromPool, "to_pool": in.Pool})
	moved, err := s.st.AssignIntegration(r.Context(), in, ev)
	if err != nil {
		return nil, err
	}
	s.log.Info("integration assigned", "integration", in.ID, "from", from, "to", in.CollectorID, "from_pool", fromPool, "to_pool", in.Pool, "queued_jobs_moved", moved)
	v, err := s.integrationView(in)
	return &v, err
}

// deleteIntegration deletes an integration and cancels its jobs; with
// ?purge=true its entities, relationships, jobs and job logs are deleted
// too, in the background.
func (s *Server) deleteIntegration(w http.ResponseWriter, r *http.Request) error {
	in, err := s.loadIntegration(r)
	if err != nil {
		return err
	}
	purge := false
	switch v := r.URL.Query().Get("purge"); v {
	case "", "false":
	case "true":
		purge = true
	default:
		return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "purge must be true or false, not %q", v)
	}
	if err := s.DeleteIntegrationAct(r, in.ID, purge); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DeleteIntegrationAct deletes an integration and cancels its jobs; with
// purge its data, jobs and logs go too.
func (s *Server) DeleteIntegrationAct(r *http.Request, id string, purge bool) error {
	in, err := s.st.Integration(r.Context(), id)
	if err != nil {
		return err
	}
	ev := s.event(r, "integration.deleted", in.ID, map[string]any{"name": in.Name, "collector_id": in.CollectorID, "purge": purge})
	canceled, err := s.st.DeleteIntegration(r.Context(), in.ID, purge, ev)
	if err != nil {
		return err
	}
	s.log.Info("integration deleted", "integration", in.ID, "jobs_canceled", canceled, "purge", purge)
	return nil
}
