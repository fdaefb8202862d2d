package platform

import (
	"net/http"
	"strings"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
)

// Users and tokens (admin): the P8 operations, through the same acts as
// the API's handlers.

// CreateUserAct creates a local user.
func (s *Server) CreateUserAct(r *http.Request, req api.CreateUserRequest) (access.User, error) {
	role, err := access.ParseRole(req.Role)
	if err != nil {
		return access.User{}, accessError(err)
	}
	p := principal(r)
	u, err := s.access.CreateUser(r.Context(), access.CreateUserRequest{Login: req.Login, DisplayName: req.DisplayName, Password: req.Password, Role: role}, p.Actor(), p.Meta)
	if err != nil {
		return access.User{}, accessError(err)
	}
	return u, nil
}

// SetRoleAct changes a user's role; no one lowers their own.
func (s *Server) SetRoleAct(r *http.Request, id, roleName string) (access.User, error) {
	role, err := access.ParseRole(roleName)
	if err != nil {
		return access.User{}, accessError(err)
	}
	p := principal(r)
	if id == p.User.ID && role != access.RoleAdmin {
		return access.User{}, errorf(http.StatusConflict, api.CodeConflict, "you cannot lower your own role: ask another admin (or use `platform users set-role` on the host)")
	}
	u, err := s.access.SetRole(r.Context(), id, role, p.Actor(), p.Meta)
	if err != nil {
		return access.User{}, accessError(err)
	}
	return u, nil
}

// SetDisabledAct disables or enables a user; no one disables themselves.
func (s *Server) SetDisabledAct(r *http.Request, id string, disabled bool) (access.User, error) {
	p := principal(r)
	if disabled && id == p.User.ID {
		return access.User{}, errorf(http.StatusConflict, api.CodeConflict, "you cannot disable yourself")
	}
	u, err := s.access.SetDisabled(r.Context(), id, disabled, p.Actor(), p.Meta)
	if err != nil {
		return access.User{}, accessError(err)
	}
	return u, nil
}

// ResetMFAAct removes a user's second factors (they enrol again).
func (s *Server) ResetMFAAct(r *http.Request, id string) error {
	p := principal(r)
	if err := s.access.ResetMFA(r.Context(), id, p.Actor(), p.Meta); err != nil {
		return accessError(err)
	}
	return nil
}

type userRow struct {
	api.User
	Self bool
}

type usersData struct {
	Users  []userRow
	Tokens []api.APIToken
	Roles  []string
	// Form: a new user.
	Login, DisplayName, Role string
	FormError                string
	Message                  string
}

func (s *Server) usersData(r *http.Request, p *access.Principal) (*usersData, error) {
	ctx := r.Context()
	us, err := s.access.Users(ctx)
	if err != nil {
		return nil, err
	}
	d := &usersData{Roles: []string{string(access.RoleViewer), string(access.RoleOperator), string(access.RoleAdmin)}, Role: string(access.RoleViewer),
		Message: r.URL.Query().Get("done")}
	for _, u := range us {
		m, err := s.access.MFA(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		d.Users = append(d.Users, userRow{User: userView(u, &m), Self: u.ID == p.User.ID})
	}
	ts, err := s.access.Tokens(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		d.Tokens = append(d.Tokens, tokenView(t))
	}
	return d, nil
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	d, err := s.usersData(r, p)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	s.page(w, r, p, http.StatusOK, "users", "Users and tokens", d)
}

func (s *Server) createUserSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	req := api.CreateUserRequest{Login: strings.TrimSpace(r.PostFormValue("login")), DisplayName: strings.TrimSpace(r.PostFormValue("display_name")),
		Password: r.PostFormValue("password"), Role: r.PostFormValue("role")}
	if _, err := s.CreateUserAct(r, req); err != nil {
		d, derr := s.usersData(r, p)
		if derr != nil {
			s.pageError(w, r, p, derr)
			return
		}
		_, msg, shown := formError(err)
		if !shown {
			s.pageError(w, r, p, err)
			return
		}
		d.Login, d.DisplayName, d.Role, d.FormError = req.Login, req.DisplayName, req.Role, msg
		he, _ := toHTTPError(err)
		s.page(w, r, p, he.status, "users", "Users and tokens", d)
		return
	}
	seeOther(w, r, "/users?done=created")
}

// userActSubmit is one of a user row's buttons: ?act= role, disable,
// enable, reset-mfa.
func (s *Server) userActSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	id := r.PathValue("id")
	var err error
	switch act := r.PostFormValue("act"); act {
	case "role":
		_, err = s.SetRoleAct(r, id, r.PostFormValue("role"))
	case "disable", "enable":
		_, err = s.SetDisabledAct(r, id, act == "disable")
	case "reset-mfa":
		err = s.ResetMFAAct(r, id)
	default:
		err = errorf(http.StatusBadRequest, api.CodeInvalidRequest, "act %q: want role, disable, enable or reset-mfa", act)
	}
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	seeOther(w, r, "/users?done=updated")
}

// userActPage confirms disabling a user or resetting their second
// factors.
func (s *Server) userActPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	u, err := s.access.User(r.Context(), r.PathValue("id"))
	if err != nil {
		s.pageError(w, r, p, accessError(err))
		return
	}
	d := confirmData{Action: "/users/" + u.ID, Back: "/users"}
	switch act := r.URL.Query().Get("act"); act {
	case "disable":
		d.Title, d.Button = "Disable "+u.Login, "Disable the user"
		d.Question = "Their sessions and API tokens stop at once; they cannot sign in until enabled again."
	case "reset-mfa":
		d.Title, d.Button = "Reset the second factors of "+u.Login, "Reset their second factors"
		d.Question = "Their authenticator app, passkeys and recovery codes are removed; they enrol again at their next sign-in."
	default:
		s.pageError(w, r, p, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "act %q: want disable or reset-mfa", act))
		return
	}
	d.Hidden = map[string]string{"act": r.URL.Query().Get("act")}
	s.page(w, r, p, http.StatusOK, "confirm", d.Title, d)
}

// revokeTokenPage confirms a token's revocation.
func (s *Server) revokeTokenPage(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	id := r.PathValue("id")
	d := confirmData{Title: "Revoke an API token", Action: "/tokens/" + id + "/revoke", Button: "Revoke the token", Back: "/users",
		Question: "Whatever uses it (a script, the CLI) stops at once."}
	s.page(w, r, p, http.StatusOK, "confirm", d.Title, d)
}

func (s *Server) revokeTokenSubmit(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	if err := s.access.RevokeToken(r.Context(), p, r.PathValue("id")); err != nil {
		s.pageError(w, r, p, accessError(err))
		return
	}
	seeOther(w, r, "/users?done=revoked")
}
