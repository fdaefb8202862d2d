package platform

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
)

// activeWindow is how recent a heartbeat must be for a collector to be active.
func (s *Server) activeWindow() time.Duration { return 3 * s.cfg.HeartbeatInterval }

// status says whether the collector can run jobs now, and if not, why.
// Heartbeats alone do not make it active: its engine must answer and its
// runner run (a collector whose engine went away still heartbeats).
func (s *Server) status(c store.Collector) (string, string) {
	switch {
	case c.Tampered:
		return api.CollectorStatusDegraded, "its keys fail the integrity check: the record was altered outside the platform; re-enroll it"
	case c.PoolTampered:
		return api.CollectorStatusDegraded, "its pool membership fails the integrity check: the record was altered outside the platform; it is in no pool until you set its pool again (platform collectors set-pool)"
	case c.EnrolledAt.IsZero():
		return api.CollectorStatusPending, ""
	case c.LastSeenAt.IsZero() || s.now().Sub(c.LastSeenAt) > s.activeWindow():
		return api.CollectorStatusOffline, ""
	case c.LastBeat != nil && c.LastBeat.EngineError != "":
		return api.CollectorStatusDegraded, "container engine unreachable: " + c.LastBeat.EngineError
	case c.LastBeat != nil && c.LastBeat.RunnerState != api.RunnerRunning && c.LastBeat.RunnerState != api.RunnerRestarted:
		return api.CollectorStatusDegraded, "runner not running (state: " + c.LastBeat.RunnerState + ")"
	}
	return api.CollectorStatusActive, ""
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Server) collectorView(c store.Collector) api.Collector {
	status, reason := s.status(c)
	v := api.Collector{
		ID: c.ID, Name: c.Name, Pool: c.Pool, Status: status, StatusReason: reason, CreatedAt: c.CreatedAt,
		DesiredImage: c.DesiredImage, DesiredVersion: c.DesiredVersion,
		EnrolledAt: timePtr(c.EnrolledAt), LastHeartbeatAt: timePtr(c.LastSeenAt),
	}
	if c.LastBeat != nil {
		hb := heartbeatView(*c.LastBeat)
		v.LastHeartbeat = &hb
	}
	if len(c.IdentityKey) > 0 {
		v.IdentityKeyFingerprint = crypto.Fingerprint(c.IdentityKey)
		v.HPKEKeyFingerprint = crypto.Fingerprint(c.HPKEKey)
	}
	return v
}

// pathID returns the {id} path value if it is a well-formed ID.
func pathID(r *http.Request, valid func(string) bool, what string) (string, error) {
	id := r.PathValue("id")
	if !valid(id) {
		return "", errorf(http.StatusNotFound, api.CodeNotFound, "%s %q not found", what, id)
	}
	return id, nil
}

func (s *Server) newEnrollmentGrant(c store.Collector) (store.EnrollmentToken, string, error) {
	tok, err := crypto.NewToken(api.EnrollmentTokenPrefix)
	if err != nil {
		return store.EnrollmentToken{}, "", err
	}
	now := s.now()
	return store.EnrollmentToken{
		Hash: crypto.HashToken(tok), CollectorID: c.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.EnrollmentTokenTTL),
	}, tok, nil
}

func (s *Server) grant(c store.Collector, tok string, t store.EnrollmentToken) api.EnrollmentGrant {
	return api.EnrollmentGrant{
		Collector: s.collectorView(c), EnrollmentToken: tok, ExpiresAt: t.ExpiresAt,
		CAPin: s.certs.caPin(), InstallCommands: s.installCommands(c.ID),
	}
}

// installCommands are the installer command lines for a collector. The
// enrollment token is not among them: the installer reads it on stdin, so it
// never lands in a shell history or a process listing.
func (s *Server) installCommands(id string) api.InstallCommands {
	// COLLECTOR_IMAGE tells the installer which image to run its
	// containers from (Docker gives a container no way to know its image).
	env := fmt.Sprintf("-e COLLECTOR_ID=%s -e COLLECTOR_PLATFORM_URL=%s -e COLLECTOR_CA_PIN=%s -e COLLECTOR_IMAGE=%s",
		shellQuote(id), shellQuote(s.audience), shellQuote(s.certs.caPin()), shellQuote(s.cfg.CollectorImage))
	// A platform on loopback is reachable from the collector's containers
	// only on the host's network; a collector image on a loopback registry
	// is served over plain HTTP (tests, the demo).
	if isLoopback(s.publicURL.Hostname()) {
		env += " -e COLLECTOR_NETWORK=host"
	}
	if reg := imageRegistry(s.cfg.CollectorImage); isLoopback(strings.Split(reg, ":")[0]) {
		env += " -e COLLECTOR_INSECURE_REGISTRIES=" + shellQuote(reg)
	}
	cmd := func(engine, sock string) string {
		// Podman refuses a bind mount whose source is missing, and the
		// dirs must be root's alone: create them first, 0700. Job secrets
		// are files on the tmpfs /run/collector/secrets, never on a disk.
		return fmt.Sprintf("sudo mkdir -p -m 0700 /etc/collector /var/lib/collector /run/collector/secrets && "+
			"sudo %s run --rm -i --privileged --network host %s -v /etc/collector:/etc/collector:Z "+
			"-v /var/lib/collector:/var/lib/collector:Z -v /run/collector/secrets:/run/collector/secrets -v %s:%s %s install",
			engine, env, sock, sock, shellQuote(s.cfg.CollectorImage))
	}
	return api.InstallCommands{
		// Podman's socket directory, not the file: a restarted service
		// creates a new socket there, which a mount of the old file would
		// never see. Docker's socket sits in /var/run with the rest of the
		// host's, so the file (collector/install.SocketMount says why).
		Podman: cmd("podman", "/run/podman"),
		Docker: cmd("docker", "/var/run/docker.sock"),
	}
}

// isLoopback reports whether host names this machine's loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// imageRegistry returns the registry host[:port] of an image reference, or
// "" when the reference has none.
func imageRegistry(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if !ok || !strings.ContainsAny(first, ".:") && first != "localhost" {
		return ""
	}
	return first
}

// shellQuote quotes s for a POSIX shell when it holds anything unusual.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@+=,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (s *Server) createCollector(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeInto[api.CreateCollectorRequest](s, w, r)
	if err != nil {
		return err
	}
	g, err := s.CreateCollectorAct(r, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

// CreateCollectorAct creates a collector with its first enrollment token:
// the one path for the API and the console.
func (s *Server) CreateCollectorAct(r *http.Request, req api.CreateCollectorRequest) (*api.EnrollmentGrant, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	c := store.Collector{ID: newID("col"), Name: req.Name, Pool: req.Pool, CreatedAt: s.now()}
	t, tok, err := s.newEnrollmentGrant(c)
	if err != nil {
		return nil, err
	}
	ev := s.event(r, "collector.created", c.ID, map[string]any{"name": c.Name, "pool": c.Pool, "token_expires_at": t.ExpiresAt})
	if err := s.st.CreateCollector(r.Context(), c, t, ev); err != nil {
		return nil, err
	}
	s.log.Info("collector created", "collector", c.ID, "name", c.Name)
	g := s.grant(c, tok, t)
	return &g, nil
}

// listCollectors is a page of collectors by name: ?q=, ?status=, ?pool=,
// ?after= (the previous page's "next") and ?limit=.
func (s *Server) listCollectors(w http.ResponseWriter, r *http.Request) error {
	f, err := s.collectorFilter(r, defaultListPage)
	if err != nil {
		return err
	}
	out, err := s.collectorsPage(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) showCollector(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, api.ValidCollectorID, "collector")
	if err != nil {
		return err
	}
	c, err := s.st.Collector(r.Context(), id)
	if errors.Is(err, store.ErrIntegrity) && c.ID == id {
		// Shown, flagged: an administrator must see what was altered.
		s.log.Error("collector keys fail their integrity check", "collector", id)
		err = nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.collectorView(c))
	return nil
}

func (s *Server) collectorHeartbeats(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, api.ValidCollectorID, "collector")
	if err != nil {
		return err
	}
	if _, err := s.st.Collector(r.Context(), id); err != nil {
		return err
	}
	hbs, err := s.st.Heartbeats(r.Context(), id, s.cfg.HeartbeatHistory)
	if err != nil {
		return err
	}
	out := api.HeartbeatList{Heartbeats: make([]api.Heartbeat, 0, len(hbs))}
	for _, hb := range hbs {
		out.Heartbeats = append(out.Heartbeats, heartbeatView(hb))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteCollector(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, api.ValidCollectorID, "collector")
	if err != nil {
		return err
	}
	if err := s.DeleteCollectorAct(r, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DeleteCollectorAct deletes a collector (an *store.AssignedError names
// the integrations still on it).
func (s *Server) DeleteCollectorAct(r *http.Request, id string) error {
	ev := s.event(r, "collector.deleted", id, nil)
	canceled, err := s.st.DeleteCollector(r.Context(), id, ev)
	if err != nil {
		return err
	}
	s.log.Info("collector deleted; its credentials are revoked", "collector", id, "jobs_canceled", canceled)
	return nil
}

func (s *Server) setCollectorPool(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, api.ValidCollectorID, "collector")
	if err != nil {
		return err
	}
	req, err := decodeInto[api.SetPoolRequest](s, w, r)
	if err != nil {
		return err
	}
	c, err := s.SetCollectorPoolAct(r, id, req.Pool)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// SetCollectorPoolAct moves a collector into a pool ("" takes it out).
// The jobs it runs finish; from its next poll it leases its new pool's
// jobs, and a job of its old pool it leased meanwhile goes back.
func (s *Server) SetCollectorPoolAct(r *http.Request, id, pool string) (*api.Collector, error) {
	if err := (api.SetPoolRequest{Pool: pool}).Validate(); err != nil {
		return nil, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "%v", err)
	}
	c, err := s.st.Collector(r.Context(), id)
	if err != nil {
		return nil, err
	}
	ev := s.event(r, "collector.pool_set", id, map[string]any{"from": c.Pool, "to": pool})
	if err := s.st.SetCollectorPool(r.Context(), id, pool, ev); err != nil {
		return nil, err
	}
	s.log.Info("collector pool set", "collector", id, "from", c.Pool, "to", pool)
	c.Pool = pool
	v := s.collectorView(c)
	return &v, nil
}

func (s *Server) newEnrollmentToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, api.ValidCollectorID, "collector")
	if err != nil {
		return err
	}
	if err := s.noBody(w, r); err != nil {
		return err
	}
	g, err := s.NewEnrollmentTokenAct(r, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

// NewEnrollmentTokenAct issues a collector a new enrollment token,
// revoking its unused ones.
func (s *Server) NewEnrollmentTokenAct(r *http.Request, id string) (*api.EnrollmentGrant, error) {
	c, err := s.st.Collector(r.Context(), id)
	if err != nil {
		return nil, err
	}
	t, tok, err := s.newEnrollmentGrant(c)
	if err != nil {
		return nil, err
	}
	ev := s.event(r, "collector.token_issued", id, map[string]any{"token_expires_at": t.ExpiresAt})
	if err := s.st.ReplaceEnrollmentToken(r.Context(), t, ev); err != nil {
		return nil, err
	}
	s.log.Info("enrollment token issued; earlier tokens revoked", "collector", id)
	g := s.grant(c, tok, t)
	return &g, nil
}

// noBody refuses a body on an endpoint that takes none; an empty JSON
// object is tolerated.
func (s *Server) noBody(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	_, err := decode(s, w, r, func(rd io.Reader) (struct{}, error) {
		var v struct{}
		return v, api.Decode(rd, &v)
	})
	return err
}
