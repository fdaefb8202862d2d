package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
)

// httpError is an error with the status and code the client gets.
type httpError struct {
	status     int
	code       string
	message    string
	retryAfter int // seconds, for 429 and 503; 0 = no header
}

func (e *httpError) Error() string { return e.message }

func errorf(status int, code, format string, args ...any) error {
	return &httpError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// toHTTPError maps an error from a handler to what the client sees. Errors
// not known here are 500 with a generic message (and logged).
func toHTTPError(err error) (*httpError, bool) {
	var he *httpError
	var mbe *http.MaxBytesError
	var ae *store.AssignedError
	switch {
	case errors.As(err, &he):
		return he, true
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The body's deadline (withBodyDeadline) passed while it was read.
		return &httpError{status: http.StatusRequestTimeout, code: api.CodeRequestTimeout,
			message: "the request body did not arrive in time: send it again, smaller or faster"}, true
	case errors.As(err, &mbe):
		return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge,
			message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}, true
	case errors.Is(err, api.ErrInvalid), errors.Is(err, store.ErrInvalid):
		return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidRequest, message: err.Error()}, true
	case errors.As(err, &ae):
		return &httpError{status: http.StatusConflict, code: api.CodeAssigned, message: ae.Error()}, true
	case errors.Is(err, store.ErrNotFound):
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, message: err.Error()}, true
	case errors.Is(err, store.ErrConflict):
		return &httpError{status: http.StatusConflict, code: api.CodeConflict, message: err.Error()}, true
	case errors.As(err, new(*uncheckedError)):
		return &httpError{status: http.StatusBadGateway, code: api.CodeImageUnchecked, message: err.Error()}, true
	case errors.Is(err, queue.ErrStorageFull):
		// Known, but logged: an operator must act.
		return &httpError{status: http.StatusServiceUnavailable, code: api.CodeStorageFull, retryAfter: 10,
			message: "the platform's disk is full: it stores nothing until an operator frees space; send it again later"}, false
	case errors.Is(err, store.ErrIntegrity):
		// Logged in full by serve; the client learns only that it failed.
		return &httpError{status: http.StatusInternalServerError, code: api.CodeIntegrity,
			message: "integrity check failed: a record was altered outside the platform; see the platform log"}, false
	}
	return &httpError{status: http.StatusInternalServerError, code: api.CodeInternal, message: "internal error; see the platform log"}, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	he, _ := toHTTPError(err)
	if he.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(he.retryAfter))
	}
	writeJSON(w, he.status, api.ErrorBody{Error: api.ErrorDetail{Code: he.code, Message: he.message}})
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type collectorHandlerFunc func(w http.ResponseWriter, r *http.Request, collectorID string) error

// serve runs h and answers its error.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, h handlerFunc) {
	err := h(w, r)
	if err == nil {
		return
	}
	he, known := toHTTPError(err)
	if !known {
		s.log.Error("request failed", "method", r.Method, "route", r.Pattern, "err", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "route", r.Pattern, "status", he.status, "code", he.code)
	}
	writeError(w, err)
}

// public serves an endpoint that needs no credentials.
func (s *Server) public(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, h) })
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > 512 {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

var errUnauthorized = errorf(http.StatusUnauthorized, api.CodeUnauthorized,
	"missing or wrong credentials: send Authorization: Bearer <token>")

// collectorOnly requires a live access token and passes its collector ID:
// the only source of a collector handler's identity.
func (s *Server) collectorOnly(h collectorHandlerFunc) http.Handler {
	return s.public(func(w http.ResponseWriter, r *http.Request) error {
		tok, ok := bearer(r)
		if !ok || !strings.HasPrefix(tok, api.AccessTokenPrefix) {
			s.metrics.authFailure("access_token")
			return errUnauthorized
		}
		id, err := s.st.AccessTokenCollector(r.Context(), crypto.HashToken(tok), s.now())
		if errors.Is(err, store.ErrAccessInvalid) {
			s.metrics.authFailure("access_token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="platform-collector", error="invalid_token"`)
			return errorf(http.StatusUnauthorized, api.CodeUnauthorized, "access token invalid or expired: exchange a new assertion")
		}
		if err != nil {
			return err
		}
		return h(w, r, id)
	})
}

// decode reads a bounded JSON body into v with dec.
func decode[T any](s *Server, w http.ResponseWriter, r *http.Request, dec func(io.Reader) (T, error)) (T, error) {
	var zero T
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return zero, errorf(http.StatusUnsupportedMediaType, api.CodeUnsupportedMedia, "Content-Type must be application/json")
		}
	}
	return dec(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
}

// decodeInto is decode for a type with a Validate method.
func decodeInto[T interface{ Validate() error }](s *Server, w http.ResponseWriter, r *http.Request) (T, error) {
	return decode(s, w, r, func(rd io.Reader) (T, error) {
		var v T
		if err := api.Decode(rd, &v); err != nil {
			return v, err
		}
		return v, v.Validate()
	})
}
