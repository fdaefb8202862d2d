package platform

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

// RouteInfo is one route and what it needs: the table the route × role
// test walks.
type RouteInfo struct {
	Method, Path string
	Permission   access.Permission
	// StepUp: a browser session needs a second factor from the last 10
	// minutes (a destructive act).
	StepUp bool
	// Partial: a session still waiting for its second factor may call it
	// (the second-factor endpoints themselves).
	Partial bool
	// Page: a console page (answers in HTML, redirects to sign in).
	Page bool
}

// Routes lists every route with the permission it needs.
func (s *Server) Routes() []RouteInfo { return append([]RouteInfo(nil), s.table...) }

type principalKey struct{}

// principal returns the request's authenticated user (nil on a public or
// collector route).
func principal(r *http.Request) *access.Principal {
	p, _ := r.Context().Value(principalKey{}).(*access.Principal)
	return p
}

// event builds an audit event attributed to the request's principal, with
// its source address and user agent.
func (s *Server) event(r *http.Request, action, target string, details map[string]any) store.Event {
	p := principal(r)
	m := access.MetaOf(r)
	if p != nil {
		m = p.Meta
	}
	return access.EventFor(s.now(), p.Actor(), action, target, m, details)
}

// routeOpt sets a route's options.
type routeOpt func(*RouteInfo)

// stepUp marks a destructive act.
func stepUp(ri *RouteInfo) { ri.StepUp = true }

// partial lets a session waiting for its second factor call the route.
func partial(ri *RouteInfo) { ri.Partial = true }

var errForbidden = errorf(http.StatusForbidden, api.CodeForbidden, "your role does not allow this")

// authorize runs h for a signed-in principal that the route allows: one
// place decides for the API and the console alike. After an act (any
// method but GET) the audit head is saved outside the database.
func (s *Server) authorize(ri RouteInfo, h handlerFunc) http.Handler {
	return s.public(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.access.Authenticate(r.Context(), r)
		switch {
		case errors.Is(err, access.ErrUnauthenticated):
			s.metrics.authFailure(authFailureKind(r))
			w.Header().Set("WWW-Authenticate", `Bearer realm="platform"`)
			return errUnauthorized
		case err != nil:
			return err
		case !p.Full() && !ri.Partial:
			return errorf(http.StatusUnauthorized, api.CodeMFARequired, "finish signing in: verify (or enroll) your second factor first")
		case !access.Allows(p.Role, ri.Permission):
			return errForbidden
		case ri.StepUp && p.Session != nil && !p.RecentMFA(s.now(), s.accessCfg.StepUp):
			return errorf(http.StatusForbidden, api.CodeStepUp, "confirm with your second factor first: this act needs one from the last %s", s.accessCfg.StepUp)
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		err = h(w, r)
		if r.Method != http.MethodGet {
			s.checkpointAudit(context.WithoutCancel(r.Context()))
		}
		return err
	})
}

// authFailureKind labels a refused credential for the metrics.
func authFailureKind(r *http.Request) string {
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return "api_token"
	}
	return "session"
}

// accessError maps the access service's errors to HTTP answers.
func accessError(err error) error {
	var te *access.ThrottledError
	switch {
	case errors.As(err, &te):
		return &httpError{status: http.StatusTooManyRequests, code: api.CodeThrottled, message: te.Error(),
			retryAfter: int(te.RetryAfter.Seconds()) + 1}
	case errors.Is(err, access.ErrBadCredentials):
		return errorf(http.StatusUnauthorized, api.CodeBadCredentials, "wrong login or password")
	case errors.Is(err, access.ErrSecondFactor):
		return errorf(http.StatusUnauthorized, api.CodeSecondFactor, "%v", err)
	case errors.Is(err, access.ErrUnauthenticated):
		return errorf(http.StatusUnauthorized, api.CodeUnauthorized, "%v", err)
	case errors.Is(err, access.ErrStepUp):
		return errorf(http.StatusForbidden, api.CodeStepUp, "%v", err)
	case errors.Is(err, access.ErrForbidden):
		return errorf(http.StatusForbidden, api.CodeForbidden, "%v", err)
	case errors.Is(err, access.ErrWeakPassword), errors.Is(err, access.ErrInvalid):
		return errorf(http.StatusBadRequest, api.CodeInvalidRequest, "%v", err)
	case errors.Is(err, access.ErrNotFound):
		return errorf(http.StatusNotFound, api.CodeNotFound, "%v", err)
	case errors.Is(err, access.ErrConflict):
		return errorf(http.StatusConflict, api.CodeConflict, "%v", err)
	}
	return err
}
