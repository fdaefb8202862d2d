package platform

import (
	"context"
	"errors"
	"net/http"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/console"
)

// authorizePage is authorize for a console page: the same principal and
// the same permission check, answered as a browser expects (a redirect to
// sign in, to the second factor, or an error page).
func (s *Server) authorizePage(ri RouteInfo, h console.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ri.Permission == access.PermPublic {
			h(w, r, nil)
			return
		}
		p, err := s.access.Authenticate(r.Context(), r)
		switch {
		case errors.Is(err, access.ErrUnauthenticated):
			console.RedirectToSignIn(w, r, nil)
			return
		case err != nil:
			s.log.Error("page: authentication failed", "err", err)
			s.console.Error(w, nil, http.StatusInternalServerError, "Error", "internal error; see the platform log")
			return
		case !p.Full() && !ri.Partial:
			console.RedirectToSignIn(w, r, p)
			return
		case !access.Allows(p.Role, ri.Permission):
			s.console.Error(w, p, http.StatusForbidden, "Not allowed", "Your role ("+string(p.Role)+") does not allow this.")
			return
		case ri.StepUp && p.Session != nil && !p.RecentMFA(s.now(), s.accessCfg.StepUp):
			console.StepUp(w, r)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), p)
		if r.Method != http.MethodGet {
			s.checkpointAudit(context.WithoutCancel(r.Context()))
		}
	})
}
