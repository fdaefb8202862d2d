package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/store"
)

const (
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

func queryInt(r *http.Request, name string, def, min, max int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		return 0, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "query parameter %s must be an integer between %d and %d", name, min, max)
	}
	return n, nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	after, err := queryInt(r, "after", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", defaultAuditPage, 1, maxAuditPage)
	if err != nil {
		return err
	}
	es, err := s.st.AuditEntries(r.Context(), after, int(limit))
	if err != nil {
		return err
	}
	out := api.AuditList{Entries: make([]api.AuditEntry, 0, len(es))}
	for _, e := range es {
		out.Entries = append(out.Entries, api.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action,
			Target: e.Target, Details: json.RawMessage(e.Details), PrevHash: e.PrevHash, Hash: e.Hash})
	}
	if len(es) == int(limit) {
		out.NextAfter = es[len(es)-1].Seq
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// verifyAudit walks the chain (hashes and MACs) and checks it still holds
// the head the platform saved outside the database and, with
// ?expect=SEQ:HASH, a head an administrator saved earlier.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	var expect []store.Checkpoint
	if v := r.URL.Query().Get("expect"); v != "" {
		c, err := parseCheckpoint(v)
		if err != nil {
			return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "expect: %v", err)
		}
		expect = append(expect, c)
	}
	out, err := s.auditVerification(r.Context(), expect)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// auditVerification walks the whole chain against the saved checkpoint
// and expect.
func (s *Server) auditVerification(ctx context.Context, expect []store.Checkpoint) (api.AuditVerification, error) {
	saved, err := s.auditCheckpoint()
	if err != nil {
		return api.AuditVerification{}, err
	}
	expect = append(expect, saved)
	res, err := s.st.VerifyAudit(ctx, expect...)
	if err != nil {
		return api.AuditVerification{}, err
	}
	if !res.OK {
		s.log.Error("audit log verification failed", "seq", res.BadSeq, "reason", res.Reason)
	}
	out := api.AuditVerification{OK: res.OK, Entries: res.Entries, BadSeq: res.BadSeq,
		Reason: res.Reason, Head: res.Head, HeadSeq: res.HeadSeq}
	if saved.Seq > 0 {
		out.Checkpoint = fmt.Sprintf("%d:%s", saved.Seq, saved.Hash)
	}
	return out, nil
}
