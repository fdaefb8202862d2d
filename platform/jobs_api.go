package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
)

// jobsDirectory lets the job service read integrations and collector keys
// from the store, with configs decrypted.
type jobsDirectory struct{ s *Server }

func (d jobsDirectory) Source(ctx context.Context, integrationID string) (*jobs.Source, error) {
	in, err := d.s.st.Integration(ctx, integrationID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", jobs.ErrGone, err)
	}
	if err != nil {
		return nil, err
	}
	cfg, err := d.s.open(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", jobs.ErrSealBroken, err)
	}
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return &jobs.Source{
		IntegrationID: in.ID, CollectorID: in.CollectorID, Pool: in.Pool, Image: in.Image, Network: in.Network,
		Config: plain, SecretFields: in.SecretFields, Limits: d.s.cfg.JobLimits,
	}, nil
}

func (d jobsDirectory) CollectorHPKEKey(ctx context.Context, collectorID string) ([]byte, error) {
	c, err := d.s.st.Collector(ctx, collectorID)
	if err != nil {
		return nil, err
	}
	if len(c.HPKEKey) == 0 {
		return nil, fmt.Errorf("collector %s is not enrolled", collectorID)
	}
	return c.HPKEKey, nil
}

func (d jobsDirectory) Collector(ctx context.Context, collectorID string) (jobs.Member, error) {
	c, err := d.s.st.Collector(ctx, collectorID)
	if err != nil {
		return jobs.Member{ID: collectorID}, err
	}
	return d.member(c), nil
}

func (d jobsDirectory) member(c store.Collector) jobs.Member {
	status, _ := d.s.status(c)
	m := jobs.Member{ID: c.ID, Name: c.Name, Pool: c.Pool, Active: status == api.CollectorStatusActive}
	if c.LastBeat != nil {
		m.MemoryBytes, m.CPUs = c.LastBeat.MemTotal, c.LastBeat.CPUs
	}
	return m
}

// maxPoolMembers bounds what a waiting reason reads of a pool.
const maxPoolMembers = 500

func (d jobsDirectory) PoolMembers(ctx context.Context, pool string) ([]jobs.Member, error) {
	list, err := d.s.st.PoolMembers(ctx, pool, maxPoolMembers)
	if err != nil {
		return nil, err
	}
	out := make([]jobs.Member, 0, len(list))
	for _, c := range list {
		out = append(out, d.member(c))
	}
	return out, nil
}

func (d jobsDirectory) Schedules(ctx context.Context) ([]jobs.Schedule, error) {
	list, err := d.s.st.Integrations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]jobs.Schedule, 0, len(list))
	for _, in := range list {
		out = append(out, jobs.Schedule{IntegrationID: in.ID, CollectorID: in.CollectorID, Pool: in.Pool, Interval: in.Interval})
	}
	return out, nil
}

// jobError maps the job service's errors to HTTP answers. A body over its
// limit is 413 even when the service wrapped it as an invalid batch.
func jobError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, jobs.ErrNotFound):
		return errorf(http.StatusNotFound, api.CodeNotFound, "%v", err)
	case errors.Is(err, jobs.ErrLeaseLost):
		return errorf(http.StatusConflict, api.CodeLeaseLost, "%v", err)
	case errors.Is(err, jobs.ErrInvalid):
		return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "%v", err)
	case errors.Is(err, jobs.ErrBusy):
		return errorf(http.StatusTooManyRequests, api.CodeBusy, "%v", err)
	case errors.Is(err, jobs.ErrUnavailable):
		return errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "%v", err)
	case errors.Is(err, queue.ErrNotFound):
		return errorf(http.StatusNotFound, api.CodeNotFound, "%v", err)
	case errors.Is(err, queue.ErrInvalidState):
		return errorf(http.StatusConflict, api.CodeConflict, "%v", err)
	}
	return err
}

func (s *Server) jobsNext(w http.ResponseWriter, r *http.Request, collectorID string) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.NextRequest, error) {
		var v api.NextRequest
		err := api.Decode(rd, &v)
		if err == nil && (v.WaitSeconds < 0 || v.FreeMemoryBytes < 0) {
			err = fmt.Errorf("%w: wait_seconds and free_memory_bytes must not be negative", api.ErrInvalid)
		}
		return v, err
	})
	if err != nil {
		return err
	}
	// A long poll ends early when the collector goes away or the server
	// shuts down (then with 503, which the runner retries).
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.polls, cancel)
	defer stop()
	lease, err := s.jobs.Next(ctx, collectorID, req)
	if err != nil {
		if s.polls.Err() != nil {
			return errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the platform is shutting down: retry")
		}
		if r.Context().Err() != nil {
			return nil // the collector went away
		}
		return jobError(err)
	}
	if lease == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	// During a rotation of the signing key or the CA, the lease carries
	// the key set (docs/auth.md §8): the runner pins it before it opens
	// the envelope.
	if lease.PlatformKeys, err = s.platformKeySet(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lease)
	return nil
}

func decodeLease(s *Server, w http.ResponseWriter, r *http.Request) (api.LeaseRequest, error) {
	return decode(s, w, r, func(rd io.Reader) (api.LeaseRequest, error) {
		var v api.LeaseRequest
		err := api.Decode(rd, &v)
		if err == nil && v.LeaseID == "" {
			err = fmt.Errorf("%w: lease_id is required", api.ErrInvalid)
		}
		return v, err
	})
}

func (s *Server) jobRenew(w http.ResponseWriter, r *http.Request, collectorID string) error {
	req, err := decodeLease(s, w, r)
	if err != nil {
		return err
	}
	out, err := s.jobs.Renew(r.Context(), collectorID, r.PathValue("id"), req.LeaseID)
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) jobRunning(w http.ResponseWriter, r *http.Request, collectorID string) error {
	req, err := decodeLease(s, w, r)
	if err != nil {
		return err
	}
	if err := s.jobs.MarkRunning(r.Context(), collectorID, r.PathValue("id"), req.LeaseID); err != nil {
		return jobError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) jobRecords(w http.ResponseWriter, r *http.Request, collectorID string) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != api.ContentTypeNDJS {
		return errorf(http.StatusUnsupportedMediaType, api.CodeUnsupportedMedia, "Content-Type must be %s", api.ContentTypeNDJS)
	}
	seq, err := strconv.Atoi(r.Header.Get(api.HeaderBatchSeq))
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "header %s must be the batch's sequence number", api.HeaderBatchSeq)
	}
	body := http.MaxBytesReader(w, r.Body, api.MaxBatchBytes)
	res, err := s.jobs.Records(r.Context(), collectorID, r.PathValue("id"), r.Header.Get(api.HeaderLease), seq, body)
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request, collectorID string) error {
	seq, err := strconv.Atoi(r.Header.Get(api.HeaderLogSeq))
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "header %s must be the chunk's sequence number", api.HeaderLogSeq)
	}
	body := http.MaxBytesReader(w, r.Body, api.MaxLogBytes)
	if err := s.jobs.Logs(r.Context(), collectorID, r.PathValue("id"), r.Header.Get(api.HeaderLease), seq, body); err != nil {
		return jobError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) jobFinish(w http.ResponseWriter, r *http.Request, collectorID string) error {
	req, err := decode(s, w, r, func(rd io.Reader) (api.FinishRequest, error) {
		var v api.FinishRequest
		err := api.Decode(rd, &v)
		if err == nil && v.LeaseID == "" {
			err = fmt.Errorf("%w: lease_id is required", api.ErrInvalid)
		}
		return v, err
	})
	if err != nil {
		return err
	}
	if err := s.jobs.Finish(r.Context(), collectorID, r.PathValue("id"), req); err != nil {
		return jobError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// enqueueEndpoint answers POST /api/v1/integrations/{id}/<act>: 201 and
// the new job, or 200 and the one already queued or in flight.
func (s *Server) enqueueEndpoint(act func(*http.Request, store.Integration) (*api.Job, bool, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		in, err := s.loadIntegration(r)
		if err != nil {
			return err
		}
		job, existed, err := act(r, in)
		if err != nil {
			return err
		}
		status := http.StatusCreated
		if existed {
			status = http.StatusOK
		}
		writeJSON(w, status, job)
		return nil
	}
}

// RunNowAct enqueues the integration's job now ("run now"), deduplicated
// (existed: the integration had a job queued or in flight, returned as
// is); the job and its audit entry commit together.
func (s *Server) RunNowAct(r *http.Request, in store.Integration) (*api.Job, bool, error) {
	return s.enqueueAct(r, in, queue.ModeCollect, func(j *queue.Job) store.Event {
		return s.event(r, "job.requested", j.ID, map[string]any{"integration_id": in.ID, "collector_id": j.CollectorID, "pool": j.Pool})
	})
}

// ValidateAct queues a validation of the integration, ahead of its
// collector's or pool's collections, deduplicated as RunNowAct is, per
// mode (docs/writing-integrations.md, "Validation"). The image is checked
// again first, and an image whose manifest says it has no validate mode
// is refused.
func (s *Server) ValidateAct(r *http.Request, in store.Integration) (*api.Job, bool, error) {
	if err := assigned(in); err != nil {
		return nil, false, err
	}
	checked, err := s.checkImage(r.Context(), in.Image)
	if err != nil {
		return nil, false, err
	}
	if checked != nil && checked.Manifest != nil && !checked.Manifest.Validation.Supported {
		m := checked.Manifest
		return nil, false, errorf(http.StatusBadRequest, api.CodeInvalidRequest,
			"integration %s: its image's manifest (%s %s) declares no validate mode (validation.supported is false)", in.ID, termsafe.String(m.Name), termsafe.String(m.Version))
	}
	return s.enqueueAct(r, in, queue.ModeValidate, func(j *queue.Job) store.Event {
		return s.event(r, "integration.validation_requested", in.ID, map[string]any{"job_id": j.ID, "collector_id": j.CollectorID, "pool": j.Pool})
	})
}

// enqueueAct queues a job of mode for in on its collector or pool, audited
// by ev in the same transaction when one is added.
func (s *Server) enqueueAct(r *http.Request, in store.Integration, mode queue.Mode, ev func(*queue.Job) store.Event) (*api.Job, bool, error) {
	if err := assigned(in); err != nil {
		return nil, false, err
	}
	job, existed, err := s.st.EnqueueJob(r.Context(), queue.EnqueueRequest{IntegrationID: in.ID, CollectorID: in.CollectorID, Pool: in.Pool,
		RequestedBy: queue.RequestedByAdmin, Mode: mode}, ev)
	if err != nil {
		return nil, false, jobError(err)
	}
	v := s.jobs.View(r.Context(), job)
	return &v, existed, nil
}

// assigned refuses an integration that is on no collector and no pool.
func assigned(in store.Integration) error {
	if in.CollectorID == "" && in.Pool == "" {
		return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "integration %s is not assigned to a collector or a pool: assign it first", in.ID)
	}
	return nil
}

// listJobs is a page of jobs, newest first: ?integration=, ?collector=,
// ?state=, ?before= (the previous page's "next") and ?limit=.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	f, err := jobFilter(r, 100)
	if err != nil {
		return err
	}
	out, err := s.jobsPage(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) showJob(w http.ResponseWriter, r *http.Request) error {
	j, err := s.jobs.Queue().Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return jobError(err)
	}
	v := s.jobs.View(r.Context(), j)
	v.Waiting = s.waiting(r.Context(), j)
	writeJSON(w, http.StatusOK, v)
	return nil
}

// waiting is a queued job's waiting reason; a failure to work it out is
// logged, and the job shown without one.
func (s *Server) waiting(ctx context.Context, j *queue.Job) string {
	why, err := s.jobs.Waiting(ctx, j)
	if err != nil {
		s.log.Warn("working out why a job waits failed", "job", j.ID, "err", err)
	}
	return why
}

func (s *Server) showJobLogs(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := s.jobs.Queue().Get(r.Context(), id); err != nil {
		return jobError(err)
	}
	text, err := s.jobs.RecordStore().Logs(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, text)
	return nil
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	v, err := s.CancelJobAct(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// CancelJobAct cancels an active job, audited with the act.
func (s *Server) CancelJobAct(r *http.Request, id string) (*api.Job, error) {
	j, err := s.st.CancelJob(r.Context(), id, func(j *queue.Job) store.Event {
		return s.event(r, "job.canceled", j.ID, map[string]any{"integration_id": j.IntegrationID})
	})
	if err != nil {
		return nil, jobError(err)
	}
	v := s.jobs.View(r.Context(), j)
	return &v, nil
}

// listItems pages through an integration's entities or relationships:
// ?limit= (default 1000, at most jobs.MaxPageItems), ?after= the cursor of
// the previous page's "next"; a page also stops at jobs.MaxPageBytes.
func (s *Server) listItems(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		in, err := s.loadIntegration(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		limit, err := queryInt(r, "limit", 1000, 1, jobs.MaxPageItems)
		if err != nil {
			return err
		}
		f := jobs.ListFilter{IntegrationID: in.ID, Type: q.Get("type"), IncludeDeleted: q.Get("deleted") == "true",
			After: q.Get("after"), Limit: int(limit)}
		page, err := s.jobs.RecordStore().List(r.Context(), kind, f)
		if err != nil {
			return jobError(err)
		}
		items := page.Items
		if items == nil {
			items = []api.Item{}
		}
		key := "entities"
		if kind == api.KindRelationship {
			key = "relationships"
		}
		out := map[string]any{key: items}
		if page.Next != "" {
			out["next"] = page.Next
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}
