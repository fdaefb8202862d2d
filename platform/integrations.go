package platform

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
)

// seal encrypts an integration's config at rest, bound to its ID, so a sealed
// config cannot be moved to another integration's row.
func (s *Server) seal(id string, cfg map[string]json.RawMessage) ([]byte, error) {
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return crypto.SealAtRest(s.dataKey, plain, []byte(id))
}

func (s *Server) open(in store.Integration) (map[string]json.RawMessage, error) {
	plain, err := crypto.OpenAtRest(s.dataKey, in.SealedConfig, []byte(in.ID))
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
		ID: in.ID, Name: in.Name, Image: in.Image, Config: raw, SecretFields: fields,
		IntervalSec: int(in.Interval / time.Second), CollectorID: in.CollectorID, Network: in.Network,
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
	return map[string]any{"name": in.Name, "image": in.Image, "collector_id": in.CollectorID,
		"secret_fields": in.SecretFields, "interval_sec": int(in.Interval / time.Second), "network": in.Network}
}

func (s *Server) createIntegration(w http.ResponseWriter, r *http.Request) error {
	req, err := decode(s, w, r, api.DecodeIntegration)
	if err != nil {
		return err
	}
	cfg, _ := api.ConfigObject(req.Config) // validated by the decoder
	for _, f := range req.SecretFields {
		if string(cfg[f]) == string(maskedValue) {
			return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "secret field %q holds the mask %q, not a value", f, api.SecretMask)
		}
	}
	now := s.now()
	in := store.Integration{ID: newID("int"), Name: req.Name, Image: req.Image, SecretFields: req.SecretFields,
		Interval: time.Duration(req.IntervalSec) * time.Second, CollectorID: req.CollectorID, Network: req.Network,
		CreatedAt: now, UpdatedAt: now}
	if in.SealedConfig, err = s.seal(in.ID, cfg); err != nil {
		return err
	}
	ev := store.Event{Time: now, Actor: adminActor, Action: "integration.created", Target: in.ID, Details: integrationDetails(in)}
	if err := s.st.CreateIntegration(r.Context(), in, ev); err != nil {
		return err
	}
	s.log.Info("integration created", "integration", in.ID, "name", in.Name, "collector", in.CollectorID)
	return s.writeIntegration(w, http.StatusCreated, in)
}

func (s *Server) listIntegrations(w http.ResponseWriter, r *http.Request) error {
	ins, err := s.st.Integrations(r.Context())
	if err != nil {
		return err
	}
	out := api.IntegrationList{Integrations: make([]api.Integration, 0, len(ins))}
	for _, in := range ins {
		v, err := s.integrationView(in)
		if err != nil {
			return err
		}
		out.Integrations = append(out.Integrations, v)
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
	changed, err := s.applyUpdate(&in, req)
	if err != nil {
		return err
	}
	in.UpdatedAt = s.now()
	details := integrationDetails(in)
	details["changed"] = changed
	ev := store.Event{Time: in.UpdatedAt, Actor: adminActor, Action: "integration.updated", Target: in.ID, Details: details}
	if err := s.st.UpdateIntegration(r.Context(), in, ev); err != nil {
		return err
	}
	s.log.Info("integration updated", "integration", in.ID, "changed", changed)
	return s.writeIntegration(w, http.StatusOK, in)
}

// applyUpdate applies req to in and returns the names of the changed fields.
// A secret field sent as the mask keeps its stored value.
func (s *Server) applyUpdate(in *store.Integration, req api.IntegrationUpdate) ([]string, error) {
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
	old, err := s.open(*in)
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
	if in.SealedConfig, err = s.seal(in.ID, cfg); err != nil {
		return nil, err
	}
	return changed, nil
}

func (s *Server) assignIntegration(w http.ResponseWriter, r *http.Request) error {
	in, err := s.loadIntegration(r)
	if err != nil {
		return err
	}
	req, err := decodeInto[api.AssignRequest](s, w, r)
	if err != nil {
		return err
	}
	from := in.CollectorID
	in.CollectorID, in.UpdatedAt = req.CollectorID, s.now()
	// The sealed config is bound to the integration ID, not the collector: it
	// moves as is, so no credential has to be entered again.
	ev := store.Event{Time: in.UpdatedAt, Actor: adminActor, Action: "integration.assigned", Target: in.ID,
		Details: map[string]any{"name": in.Name, "from": from, "to": in.CollectorID}}
	if err := s.st.UpdateIntegration(r.Context(), in, ev); err != nil {
		return err
	}
	s.log.Info("integration assigned", "integration", in.ID, "from", from, "to", in.CollectorID)
	return s.writeIntegration(w, http.StatusOK, in)
}

func (s *Server) deleteIntegration(w http.ResponseWriter, r *http.Request) error {
	in, err := s.loadIntegration(r)
	if err != nil {
		return err
	}
	ev := store.Event{Time: s.now(), Actor: adminActor, Action: "integration.deleted", Target: in.ID,
		Details: map[string]any{"name": in.Name, "collector_id": in.CollectorID}}
	if err := s.st.DeleteIntegration(r.Context(), in.ID, ev); err != nil {
		return err
	}
	s.log.Info("integration deleted", "integration", in.ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
